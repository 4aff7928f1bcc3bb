"""``tinyvlm mcu ...``: emulate the firmware, talk to a device, export blobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="pyserial URL: /dev/ttyACM0, /dev/pts/N, socket://host:port")
    p.add_argument("--baud", type=int, default=921600)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per reply")


def _link(args: argparse.Namespace):
    from tinyvlm_ros.mcu.link import McuLink

    return McuLink(args.port, baud=args.baud, timeout=args.timeout).open()


def cmd_emulate(args: argparse.Namespace) -> int:
    """Run the firmware until Ctrl-C (or --seconds); print its serial URL."""
    from tinyvlm_ros.mcu.emulate import Emulator

    emu = Emulator(args.target, model=args.model, kernel=args.kernel, icount=args.icount, link_path=args.link,
                   flash=args.flash, vocab=args.vocab)
    url = emu.start()
    print(url, flush=True)
    try:
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while emu.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        return 0 if deadline is not None or emu.running else 1
    except KeyboardInterrupt:
        return 0
    finally:
        emu.stop()


def cmd_info(args: argparse.Namespace) -> int:
    """Print HELLO and STATS as JSON."""
    with _link(args) as link:
        info = dict(link.info)
        info["stats"] = link.device_stats()
    print(json.dumps(info, indent=2))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    """Print PING round-trip times."""
    with _link(args) as link:
        times = []
        for i in range(args.count):
            t0 = time.monotonic()
            link.ping(i.to_bytes(4, "little"))
            times.append(time.monotonic() - t0)
    print(f"{args.count} pings, round trip min {min(times) * 1e3:.2f} ms, "
          f"median {sorted(times)[len(times) // 2] * 1e3:.2f} ms, max {max(times) * 1e3:.2f} ms")
    return 0


def cmd_load_table(args: argparse.Namespace) -> int:
    """Load a table from a blob, embeddings or phrases."""
    from tinyvlm_ros.mcu.backend import hash_text_embed
    from tinyvlm_ros.mcu.blob import table_from_embeddings

    if args.table:
        blob = Path(args.table).read_bytes()
    elif args.embeddings:
        blob = table_from_embeddings(np.load(args.embeddings, allow_pickle=False), args.dims)
    else:
        blob = table_from_embeddings(hash_text_embed(args.phrase), args.dims)
    with _link(args) as link:
        info = link.load_table(blob)
    print(f"table loaded: {info['table_rows']} rows x {info['table_dims']} dims, "
          f"hash {info['table_hash']:08x}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Detect a command's targets and print them as JSON."""
    from tinyvlm_ros.engine.cli import report_understanding, result_to_dict, understanding_to_dict
    from tinyvlm_ros.grounding import parse_command
    from tinyvlm_ros.mcu.backend import McuEngine, hash_text_embed

    if args.image:
        import cv2

        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {args.image}")
        image = bgr[:, :, ::-1].copy()
    else:
        from tinyvlm_ros.testing.scenes import make_scene

        image = make_scene(seed=args.scene_seed).image
    parsed = parse_command(args.command)
    with McuEngine(args.port, hash_text_embed, dims=args.dims, baud=args.baud, timeout=args.timeout,
                   score_threshold=args.threshold, allow_random_model=args.allow_random_model) as engine:
        res = engine.detect(image, parsed)
        out = {**understanding_to_dict(parsed), **result_to_dict(res), "device": engine.describe()}
    report_understanding(parsed, res)
    print(json.dumps(out, indent=2))
    return 1 if res.failure else 0


def cmd_export_model(args: argparse.Namespace) -> int:
    """Write a seeded random model blob."""
    from tinyvlm_ros.mcu.blob import pack_model
    from tinyvlm_ros.mcu.random_model import random_model

    blob = pack_model(random_model(seed=args.seed))
    Path(args.out).write_bytes(blob)
    print(f"wrote {args.out} ({len(blob)} bytes, seeded random int8 encoder)")
    return 0


def cmd_vocab_build(args: argparse.Namespace) -> int:
    """Embed a vocabulary file with a trained model's text embedder; write the table blob for flash."""
    from tinyvlm_ros.mcu.trained_model import engine_inputs
    from tinyvlm_ros.mcu.vocab import build_vocab, read_vocab_file

    inputs = engine_inputs(args.mcu_model_dir, teacher_dir=args.model_dir, dims=args.dims)
    phrases = read_vocab_file(args.phrases)
    blob = build_vocab(phrases, inputs.text_embed, inputs.dims, inputs.model_id, inputs.text_id)
    Path(args.out).write_bytes(blob)
    print(f"wrote {args.out}: {len(phrases)} phrases x {inputs.dims} dims, {len(blob)} bytes, model "
          f"{inputs.model_id:08x}, text id {inputs.text_id:08x}. Build it in: make -C firmware qemu-m7 "
          f"VOCAB={args.out}; or write it: tinyvlm mcu vocab write --port URL --table {args.out}")
    return 0


def cmd_vocab_list(args: argparse.Namespace) -> int:
    """Print the device's flash vocabulary: source, rows, prefix, phrase hashes."""
    from tinyvlm_ros.mcu import protocol_constants as pc

    with _link(args) as link:
        info = link.info
        dims, hashes = link.vocab_list()
    print(json.dumps({"source": pc.VocabSource(info["vocab_source"]).name, "rows": len(hashes), "dims": dims,
                      "text_id": f"{info['vocab_text_id']:08x}", "hash": f"{info['vocab_hash']:08x}",
                      "slot_bytes": info["vocab_slot_bytes"], "phrase_hashes": [f"{h:08x}" for h in hashes]},
                     indent=2))
    return 0


def cmd_vocab_write(args: argparse.Namespace) -> int:
    """Write a vocabulary blob into the device's flash slot (or erase the slot)."""
    with _link(args) as link:
        info = link.vocab_erase() if args.erase else link.vocab_write(Path(args.table).read_bytes())
    print(f"flash vocabulary: {info['vocab_rows']} rows x {info['vocab_dims']} dims "
          f"(source {info['vocab_source']}, hash {info['vocab_hash']:08x})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mcu`` subcommands."""
    p = subparsers.add_parser("emulate", help="run the firmware on the host or under QEMU; print its URL")
    p.add_argument("--target", choices=["host", "qemu-m4", "qemu-m7", "qemu-m55"], default="host")
    p.add_argument("--model", help="model blob (default: the firmware's built-in model)")
    p.add_argument("--kernel", choices=["dsp", "plain"], default="dsp", help="host target only")
    p.add_argument("--icount", type=int, default=None, help="QEMU -icount shift (reproducible work counts)")
    p.add_argument("--link", help="host target: stable symlink to the pty")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--flash", help="file that keeps the vocabulary flash slot across restarts")
    p.add_argument("--vocab", help="vocabulary blob to build into the firmware image")
    p.set_defaults(func=cmd_emulate)

    p = subparsers.add_parser("info", help="HELLO + STATS of a device")
    _add_port(p)
    p.set_defaults(func=cmd_info)

    p = subparsers.add_parser("ping", help="round-trip times")
    _add_port(p)
    p.add_argument("--count", type=int, default=20)
    p.set_defaults(func=cmd_ping)

    p = subparsers.add_parser("load-table", help="load a text-embedding table")
    _add_port(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", help="table blob file")
    src.add_argument("--embeddings", help=".npy float [N, D] text embeddings")
    src.add_argument("--phrase", action="append", help="phrase (hash embeddings, not semantic); repeatable")
    p.add_argument("--dims", type=int, default=64, help="Matryoshka prefix kept")
    p.set_defaults(func=cmd_load_table)

    p = subparsers.add_parser("detect", help="detect a command's targets on the device")
    _add_port(p)
    p.add_argument("--command", required=True, help='e.g. "pick the red block"')
    p.add_argument("--image", help="image file (default: a generated scene)")
    p.add_argument("--scene-seed", type=int, default=0)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--threshold", type=float, default=0.25, help="cosine threshold")
    p.add_argument("--allow-random-model", action="store_true",
                   help="run on a device whose encoder has random weights (wiring checks only)")
    p.set_defaults(func=cmd_detect)

    vocab = subparsers.add_parser("vocab", help="the flash vocabulary: build, list, write").add_subparsers(
        dest="vocab_cmd", required=True)
    p = vocab.add_parser("build", help="embed a phrase file (one per line) into a vocabulary blob")
    p.add_argument("--phrases", required=True, help="text file, one phrase per line, # comments")
    p.add_argument("--mcu-model-dir", required=True, help="trained encoder (`tinyvlm mcu distill --out`)")
    p.add_argument("--model-dir", help="teacher model set for the text tower (default: the training one)")
    p.add_argument("--dims", type=int, help="prefix kept (default: the trained model's default)")
    p.add_argument("--out", required=True, help="vocabulary blob to write")
    p.set_defaults(func=cmd_vocab_build)
    p = vocab.add_parser("list", help="the device's flash vocabulary")
    _add_port(p)
    p.set_defaults(func=cmd_vocab_list)
    p = vocab.add_parser("write", help="write a vocabulary blob to the device's flash slot")
    _add_port(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--table", help="vocabulary blob (`tinyvlm mcu vocab build`)")
    g.add_argument("--erase", action="store_true", help="erase the slot (the built-in vocabulary answers)")
    p.set_defaults(func=cmd_vocab_write)

    p = subparsers.add_parser("export-model", help="write a seeded random int8 model blob")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_export_model)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="tinyvlm mcu")
    register(parser.add_subparsers(dest="cmd", required=True))
    a = parser.parse_args()
    sys.exit(a.func(a))
