"""Record open_clip's token ids for the tokenizer golden test (test/test_tokenizer.py).

Run with the export extra installed (open_clip_torch, ftfy, regex):

    python tools/gen_tokenizer_golden.py            # rewrites test/data/open_clip_token_ids.json

The corpus is what users type or say to a robot, and what phone keyboards and
speech-to-text turn it into: curly quotes and apostrophes, ligatures, full-width
text, decomposed accents, superscripts and vulgar fractions, circled numbers,
emoji, mixed scripts, HTML entities, mojibake, odd whitespace, and phrases long
enough to be cut at the context length.  Ids are recorded twice: with open_clip's
own merges file (the ids real models see) and with a small merges file written
next to the JSON (so the golden test runs even where open_clip is not installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "test" / "data"
GOLDEN = DATA / "open_clip_token_ids.json"
SMALL_MERGES = DATA / "clip_test_merges.txt.gz"
CONTEXT_LENGTH = 77
SMALL_MERGES_COUNT = 3000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(tokenizer, phrases: List[str]) -> dict:
    rows = tokenizer(phrases, context_length=CONTEXT_LENGTH).tolist()
    return {p: [t for t in row if t != 0] for p, row in zip(phrases, rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=GOLDEN, help=f"golden JSON (default {GOLDEN})")
    args = ap.parse_args(argv)

    import ftfy
    import regex

    from tinyvlm_ros.engine.tokenizer import train_merges, write_merges
    from tinyvlm_ros.testing.phrases import corpus
    from tinyvlm_ros.models.export import import_open_clip

    open_clip = import_open_clip()
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    phrases = corpus()
    # the small file: merges learnt from the corpus itself (so words become few tokens), then cut
    write_merges(SMALL_MERGES, train_merges(phrases, num_merges=SMALL_MERGES_COUNT))
    real = SimpleTokenizer(default_bpe(), context_length=CONTEXT_LENGTH)
    small = SimpleTokenizer(str(SMALL_MERGES), context_length=CONTEXT_LENGTH)
    golden = {
        "generator": "tools/gen_tokenizer_golden.py: open_clip SimpleTokenizer, clean 'lower', "
                     "trailing zero padding removed",
        "versions": {"open_clip_torch": open_clip.__version__, "ftfy": ftfy.__version__,
                     "regex": regex.__version__},
        "context_length": CONTEXT_LENGTH,
        "phrases": len(phrases),
        "real_merges": {"file": "open_clip/bpe_simple_vocab_16e6.txt.gz",
                        "sha256": _sha256(Path(default_bpe())), "ids": _record(real, phrases)},
        "small_merges": {"file": SMALL_MERGES.name, "sha256": _sha256(SMALL_MERGES),
                         "ids": _record(small, phrases)},
    }
    text = json.dumps(golden, indent=1, ensure_ascii=True)
    # one phrase per line: id lists on one line keep the file short and its diffs readable
    text = re.sub(r"\[\s+([0-9,\s]+?)\s+\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",")
                  + "]", text)
    args.out.write_text(text + "\n")
    print(f"{len(phrases)} phrases recorded with open_clip {open_clip.__version__} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
