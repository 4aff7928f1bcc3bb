"""CLIP tokenizer: open_clip's ids on the real merges file, BPE behaviour on small ones."""

import gzip
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvlm_ros.engine.tokenizer import ClipTokenizer, train_merges, write_merges
from tinyvlm_ros.testing.models import keyword_corpus

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "open_clip_token_ids.json").read_text())


def _real_merges():
    """open_clip's merges file, if an installed copy can be found (never downloaded, never imported)."""
    env = os.environ.get("TINYVLM_CLIP_BPE")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    return path if path.is_file() else None


def _compare(tok: ClipTokenizer, recorded: dict) -> None:
    ctx = GOLDEN["context_length"]
    assert tok.context_length == ctx
    wrong = []
    for text, ids in recorded.items():
        row = tok(text)[0].tolist()
        if row != ids + [0] * (ctx - len(ids)):
            wrong.append((text, row[:len(ids) + 2], ids))
    assert not wrong, f"{len(wrong)} of {len(recorded)} phrases differ from open_clip, e.g. {wrong[:3]}"


def test_golden_corpus_covers_the_troublesome_kinds():
    phrases = list(GOLDEN["small_merges"]["ids"])
    assert len(phrases) >= 200 and phrases == list(GOLDEN["real_merges"]["ids"])
    joined = "".join(phrases)
    for sample in ("\u2019", "\u201c", "\ufb01", "\uff50", "\u0301", "m\u00b2", "5\u00bd", "\u2460",
                   "\U0001f34e", "\u676f", "&amp;", "\u00c3\u00a9"):
        assert sample in joined, sample
    assert any(len(ids) == GOLDEN["context_length"] for ids in GOLDEN["real_merges"]["ids"].values())


def test_matches_open_clip_on_the_small_merges_file():
    # ids recorded from open_clip with a small merges file kept in test/data: runs everywhere
    path = DATA / GOLDEN["small_merges"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GOLDEN["small_merges"]["sha256"]
    _compare(ClipTokenizer(path, GOLDEN["context_length"]), GOLDEN["small_merges"]["ids"])


def test_matches_open_clip_on_the_real_merges_file():
    path = _real_merges()
    if path is None:
        pytest.skip("open_clip's bpe_simple_vocab_16e6.txt.gz not installed; set TINYVLM_CLIP_BPE")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == GOLDEN["real_merges"]["sha256"]
    tok = ClipTokenizer(path, GOLDEN["context_length"])
    assert (tok.sot_token_id, tok.eot_token_id) == (49406, 49407)
    _compare(tok, GOLDEN["real_merges"]["ids"])


def test_phone_keyboard_text_tokenizes_like_typed_text():
    # what the repair means for a user: curly quotes, full width and ligatures change nothing
    path = _real_merges()
    tok = ClipTokenizer(path if path is not None else DATA / GOLDEN["small_merges"]["file"])
    assert tok("it\u2019s a \u201csmart\u201d quote").tolist() == tok('it\'s a "smart" quote').tolist()
    assert tok("\uff50\uff49\uff43\uff4b the \ufb01ne pen").tolist() == tok("pick the fine pen").tolist()
    assert tok("cafe\u0301").tolist() == tok("caf\u00e9").tolist()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("bpe") / "bpe_vocab.txt.gz"
    merges = train_merges(keyword_corpus())
    write_merges(path, merges)
    return ClipTokenizer(path), merges


def test_vocab_layout(small):
    tok, merges = small
    # bytes, bytes + </w>, merges, the empty entry open_clip makes of the file's trailing newline
    assert tok.sot_token_id == 512 + len(merges) + 1
    assert tok.eot_token_id == tok.sot_token_id + 1
    assert tok.vocab_size == 512 + len(merges) + 3


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
