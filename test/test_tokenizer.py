"""CLIP tokenizer: open_clip's ids on the real merges file, BPE behaviour on small ones."""

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvlm_ros.engine.tokenizer import ClipTokenizer, train_merges, write_merges
from tinyvlm_ros.testing.models import keyword_corpus

GOLDEN = Path(__file__).parent / "data" / "open_clip_token_ids.json"


def _real_merges():
    """open_clip's merges file, if some installed copy can be found (never downloaded)."""
    env = os.environ.get("TINYVLM_CLIP_BPE")
    candidates = [Path(env)] if env else []
    for entry in sys.path:
        candidates.append(Path(entry) / "open_clip" / "bpe_simple_vocab_16e6.txt.gz")
    for c in candidates:
        if c.is_file():
            return c
    return None


def test_matches_open_clip_on_real_merges():
    path = _real_merges()
    if path is None:
        pytest.skip("open_clip's bpe_simple_vocab_16e6.txt.gz not installed; set TINYVLM_CLIP_BPE")
    tok = ClipTokenizer(path)
    assert (tok.sot_token_id, tok.eot_token_id) == (49406, 49407)
    golden = json.loads(GOLDEN.read_text())["ids"]
    for text, ids in golden.items():
        row = tok(text)[0]
        assert row.tolist() == ids + [0] * (77 - len(ids)), text


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("bpe") / "bpe_vocab.txt.gz"
    merges = train_merges(keyword_corpus())
    write_merges(path, merges)
    return ClipTokenizer(path), merges


def test_vocab_layout(small):
    tok, merges = small
    assert tok.sot_token_id == 512 + len(merges)
    assert tok.eot_token_id == tok.sot_token_id + 1
    assert tok.vocab_size == 512 + len(merges) + 2


def test_keywords_are_single_tokens(small):
    tok, _ = small
    for word in ("red", "block", "triangle", "background", "photo"):
        ids = tok.encode(word)
        assert len(ids) == 1
        assert tok.decoder[ids[0]] == word + "</w>"


def test_sequence_layout_and_cleaning(small):
    tok, _ = small
    ids = tok(["  A   RED\tBlock ", "a red block"])
    assert ids.dtype == np.int64 and ids.shape == (2, 77)
    assert (ids[0] == ids[1]).all()  # case and whitespace do not matter
    n = int((ids[0] != 0).sum())
    assert ids[0, 0] == tok.sot_token_id and ids[0, n - 1] == tok.eot_token_id
    assert (ids[0, n:] == 0).all()
    assert tok("&amp;").tolist() == tok("&").tolist()  # HTML entities are unescaped


def test_truncation_keeps_eos(small):
    tok, _ = small
    row = tok("zq " * 100)[0]
    assert row[0] == tok.sot_token_id and row[-1] == tok.eot_token_id
    assert (row != 0).all()


def test_unknown_words_fall_back_to_bytes(small):
    tok, _ = small
    ids = tok.encode("zebra")
    assert len(ids) > 1
    assert "".join(tok.decoder[i] for i in ids) == "zebra</w>"


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10),
                min_size=1, max_size=8, unique=True))
def test_trained_merges_make_every_training_word_one_token(tmp_path_factory, words):
    path = tmp_path_factory.mktemp("bpe_h") / "m.txt.gz"
    write_merges(path, train_merges(words))
    tok = ClipTokenizer(path)
    for w in words:
        assert tok.decoder[tok.encode(w)[0]] == w + "</w>"
        assert len(tok.encode(w)) == 1


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        ClipTokenizer(tmp_path / "nope.txt.gz")
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="gzip"):
        ClipTokenizer(bad)
    worse = tmp_path / "worse.txt.gz"
    with gzip.open(worse, "wt") as f:
        f.write("#version\na b c\n")
    with pytest.raises(ValueError, match="bad merge line"):
        ClipTokenizer(worse)


def test_written_merges_are_reproducible(tmp_path):
    a = write_merges(tmp_path / "a.gz", train_merges(["red", "block"]))
    b = write_merges(tmp_path / "b.gz", train_merges(["red", "block"]))
    assert a.read_bytes() == b.read_bytes()
