"""The MCU's flash vocabulary: phrases embedded once on the host, stored in flash, named by hash.

A vocabulary is a table blob (:mod:`tinyvlm_ros.mcu.blob`) whose rows carry the
hash of the phrase each embeds.  It reaches the device's flash in two ways:
built into the firmware image (``make -C firmware ... VOCAB=FILE``) or written to
the flash slot by the host (``VOCAB_WRITE``, ``tinyvlm mcu vocab write``); both
survive a reboot.  At run time the engine asks the device which of a command's
phrases it holds (``VOCAB_LOOKUP`` with their hashes) and uploads rows only for
the others.

Rows are only comparable with the host's own embeddings when the same text
embedder made them at the same prefix: the blob header carries the model id
(checked by the firmware) and a *text id* (checked by the host), the CRC-32 of a
string naming the embedder (:func:`text_id`).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, List, Sequence, Union

import numpy as np

from tinyvlm_ros.mcu.blob import pack_table, quantize_table

TextEmbed = Callable[[List[str]], np.ndarray]


def normalize_phrase(phrase: str) -> str:
    """Lower case, single spaces: the form a phrase is hashed in."""
    return " ".join(str(phrase).lower().split())


def phrase_hash(phrase: str) -> int:
    """CRC-32 of the normalized phrase (UTF-8): how table rows name their phrase."""
    norm = normalize_phrase(phrase)
    if not norm:
        raise ValueError("an empty phrase has no hash")
    return zlib.crc32(norm.encode("utf-8"))


def text_id(identity: str) -> int:
    """Text id of an embedder described by ``identity`` (model file digests, projection, prompt, ...)."""
    return zlib.crc32(identity.encode("utf-8")) or 1


def read_vocab_file(path: Union[str, Path]) -> List[str]:
    """Phrases of a vocabulary file: one per line, ``#`` starts a comment, duplicates dropped (first kept)."""
    phrases: List[str] = []
    seen = set()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        p = normalize_phrase(line.split("#", 1)[0])
        if p and p not in seen:
            seen.add(p)
            phrases.append(p)
    if not phrases:
        raise ValueError(f"{path} holds no phrases (one per line, # for comments)")
    return phrases


def build_vocab(phrases: Sequence[str], text_embed: TextEmbed, dims: int, model_id: int, embedder_id: int,
                batch: int = 64) -> bytes:
    """Embed ``phrases`` and pack them as a vocabulary table blob of ``dims``-prefix int8 rows.

    Raises ValueError for an empty list or two phrases whose hashes collide (one would shadow the other).
    """
    phrases = [normalize_phrase(p) for p in phrases]
    if not phrases:
        raise ValueError("a vocabulary needs at least one phrase")
    hashes = [phrase_hash(p) for p in phrases]
    owner = {}
    for p, h in zip(phrases, hashes):
        if h in owner and owner[h] != p:
            raise ValueError(f"phrases {owner[h]!r} and {p!r} have the same hash {h:08x}; drop one")
        owner[h] = p
    if len(owner) != len(phrases):
        raise ValueError("the vocabulary lists a phrase twice")
    emb = np.concatenate([np.asarray(text_embed(list(phrases[i:i + batch])), np.float32)
                          for i in range(0, len(phrases), batch)])
    return pack_table(quantize_table(emb, dims, model_id, hashes, embedder_id))
