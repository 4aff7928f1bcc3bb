"""CLIP byte-pair tokenizer without torch: open_clip's ids for any text.

Reads a gzip merges file in open_clip's ``bpe_simple_vocab_16e6.txt.gz``
format (a header line, then one ``left right`` merge per line) and produces
the same token ids as open_clip's ``SimpleTokenizer`` with its default
``lower`` cleaning: BOS, tokens, EOS, zero padding to the context length.

Ids follow open_clip's vocabulary layout: 256 byte symbols, the same 256 with
``</w>``, one id per merge, then ``<start_of_text>`` and ``<end_of_text>``.
With the real 48 894-merge file BOS is 49406 and EOS 49407.

The clean-up is open_clip's, through the same maintained libraries: ``ftfy``
repairs what phone keyboards and speech-to-text produce (curly quotes become
straight ones, ligatures and full-width letters become plain letters,
decomposed accents are composed, mojibake is repaired), HTML entities are
unescaped, whitespace is squashed and the text lower-cased; ``regex`` supplies
the Unicode letter and number classes of the pre-tokenizer.  Agreement with
open_clip is checked by a golden test on a corpus of such phrases
(``test/data/open_clip_token_ids.json``, written by
``tools/gen_tokenizer_golden.py``).
"""

from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import ftfy
import numpy as np
import regex

#: open_clip reads at most this many merges (``merges[1:49152 - 256 - 2 + 1]``).
MAX_MERGES = 49152 - 256 - 2


@lru_cache()
def bytes_to_unicode() -> Dict[int, str]:
    """Map every byte to a printable unicode character (GPT-2/CLIP convention)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _get_pairs(word: Tuple[str, ...]) -> set:
    return {(word[i], word[i + 1]) for i in range(len(word) - 1)}


def clean_text(text: str) -> str:
    """Open_clip's ``lower`` cleaning: ftfy repair, HTML unescaped twice, whitespace squashed, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    # str.split's whitespace set is open_clip's, which differs from regex's \s (e.g. U+001C..U+001F)
    return " ".join(text.split()).lower()


# The pre-tokenizer of open_clip: special tokens, English contractions, runs of letters, single
# numbers (any script: "²", "½", "①" are numbers), runs of anything else but whitespace.
_PATTERN = regex.compile(
    r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE)


class ClipTokenizer:
    """Tokenize text into CLIP ids.

    Args:
        merges_path: gzip merges file (``bpe_vocab.txt.gz`` of a model set).
        context_length: padded sequence length (77 for CLIP).

    Raises:
        FileNotFoundError: the merges file is missing.
        ValueError: the file is not a readable merges file.
    """

    def __init__(self, merges_path: Union[str, Path], context_length: int = 77):
        path = Path(merges_path)
        if not path.is_file():
            raise FileNotFoundError(f"CLIP merges file {path} not found")
        try:
            lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(f"CLIP merges file {path} is not a gzip text file: {exc}") from exc
        merges: List[Tuple[str, ...]] = []
        for line in lines[1:MAX_MERGES + 1]:
            parts = line.split()
            # open_clip keeps a blank line (a small file's trailing newline) as an empty vocabulary
            # entry that no text can produce: it still takes an id, so the ids after it agree
            if len(parts) not in (0, 2):
                raise ValueError(f"CLIP merges file {path}: bad merge line {line!r}")
            merges.append(tuple(parts))
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {context_length}")
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab.extend("".join(m) for m in merges)
        vocab.extend(["<start_of_text>", "<end_of_text>"])
        self.encoder: Dict[str, int] = {v: i for i, v in enumerate(vocab)}
        self.decoder: Dict[int, str] = {i: v for v, i in self.encoder.items()}
        self.bpe_ranks: Dict[Tuple[str, ...], int] = {m: i for i, m in enumerate(merges) if m}
        self.sot_token_id = self.encoder["<start_of_text>"]
        self.eot_token_id = self.encoder["<end_of_text>"]
        self.vocab_size = len(vocab)
        self.context_length = context_length
        self._cache: Dict[str, str] = {"<start_of_text>": "<start_of_text>",
                                       "<end_of_text>": "<end_of_text>"}

    def bpe(self, token: str) -> str:
        """Apply the merges to one pre-token; returns space-separated symbols."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = _get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: List[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = _get_pairs(word)
        out = " ".join(word)
        self._cache[token] = out
        return out

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text`` without BOS/EOS."""
        ids: List[int] = []
        for token in _PATTERN.findall(clean_text(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def __call__(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """Tokenize one text or a list.

        Returns:
            int64 array [B, context_length]: BOS, ids, EOS, zeros.  Too long
            texts are cut and keep EOS as their last id, as open_clip does.
        """
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}")
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length]
                ids[-1] = self.eot_token_id
            out[row, :len(ids)] = ids
        return out


def train_merges(words: Sequence[str], num_merges: int = 10000) -> List[Tuple[str, str]]:
    """Learn BPE merges from a word list (used to make small test merges files).

    Classic BPE: repeatedly merge the most frequent adjacent symbol pair (ties
    broken by first appearance) until every word is one symbol or
    ``num_merges`` merges are made.  Words are byte-encoded and end in ``</w>``
    exactly as :class:`ClipTokenizer` expects, so each trained word tokenizes
    to a single id.
    """
    enc = bytes_to_unicode()
    corpus = []
    for w in words:
        w = clean_text(w)
        for token in _PATTERN.findall(w):
            t = "".join(enc[b] for b in token.encode("utf-8"))
            corpus.append(tuple(t[:-1]) + (t[-1] + "</w>",))
    corpus = list(dict.fromkeys(corpus))
    merges: List[Tuple[str, str]] = []
    while len(merges) < num_merges:
        counts: Dict[Tuple[str, str], int] = {}
        for word in corpus:
            for i in range(len(word) - 1):
                p = (word[i], word[i + 1])
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: counts[p])  # dict order breaks ties deterministically
        merges.append(best)
        new_corpus = []
        for word in corpus:
            out: List[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_corpus.append(tuple(out))
        corpus = new_corpus
    return merges


def write_merges(path: Union[str, Path], merges: Sequence[Tuple[str, str]]) -> Path:
    """Write merges in open_clip's gzip format (header line first)."""
    path = Path(path)
    text = "#version: 0.2 tinyvlm test merges\n" + "".join(f"{a} {b}\n" for a, b in merges)
    # mtime=0 keeps the file byte-identical between runs, so its sha256 is stable
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    return path
