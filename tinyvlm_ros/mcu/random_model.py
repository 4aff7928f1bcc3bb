"""The firmware's built-in model: an int8 encoder of the default architecture with random weights.

:func:`random_model` seeds the weights and calibrates stage by stage: each layer's
requantization is fitted on the int8 outputs of the already-quantized layers before it, so
activations use the int8 range instead of saturating or vanishing.  It exists to exercise the
firmware (cost, bit-exactness, protocol); it detects nothing, and says so: the blob carries the
``RANDOM_WEIGHTS`` flag, which the engine refuses unless told it is a wiring test.  Trained
encoders come from ``tinyvlm mcu distill`` (:mod:`tinyvlm_ros.distill`).

``python -m tinyvlm_ros.mcu.random_model model OUT [--seed N]`` and
``python -m tinyvlm_ros.mcu.random_model default`` (rewrites firmware/models/default.tvm).
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.blob import Layer, Model, pack_model, quantize_multiplier
from tinyvlm_ros.mcu.paths import firmware_dir
from tinyvlm_ros.mcu.reference import image_to_input, layer_acc, run_layer
from tinyvlm_ros.mcu.spec import DEFAULT_ARCH, DEFAULT_INPUT

DEFAULT_MODEL_PATH = firmware_dir() / "models" / "default.tvm"


def calibration_images(n: int, width: int, height: int, seed: int) -> List[np.ndarray]:
    """Return generated table-top scenes plus noise frames, uint8 HxWx3."""
    from tinyvlm_ros.testing.scenes import make_scene

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(make_scene(seed=seed * 1000 + i, width=width, height=height, n_objects=3).image)
        else:
            out.append(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return out


def random_model(seed: int = 0, arch: Sequence[Tuple[str, int, int, int, bool]] = DEFAULT_ARCH,
                 input_size: Tuple[int, int, int] = DEFAULT_INPUT, model_id: Optional[int] = None,
                 n_calib: int = 4) -> Model:
    """Seeded random int8 encoder, calibrated stage by stage on quantized activations."""
    width, height, channels = input_size
    rng = np.random.default_rng(seed)
    if model_id is None:
        model_id = zlib.crc32(f"random-{seed}".encode())
    model = Model(model_id=model_id, in_w=width, in_h=height, in_c=channels,
                  flags=int(pc.ModelFlag.RANDOM_WEIGHTS))
    acts = [image_to_input(img[:, :, :channels]) for img in calibration_images(n_calib, width, height, seed)]
    h, w, c, zp = height, width, channels, -128
    for i, (op, k, stride, out_c, relu) in enumerate(arch):
        if op not in ("conv", "dw"):
            raise ValueError(f"layer {i}: op must be conv or dw, got {op!r}")
        if op == "dw" and out_c != c:
            raise ValueError(f"layer {i}: depthwise keeps channels ({c}), got out_c {out_c}")
        shape = (out_c, k, k, c) if op == "conv" else (k, k, c)
        weights = np.clip(np.rint(rng.normal(0.0, 40.0, shape)), -127, 127).astype(np.int8)
        pad = (k - 1) // 2
        layer = Layer(op, k, stride, pad, c, out_c, h, w, zp, 0 if not relu else -128,
                      -128, 127, weights, np.zeros(out_c, np.int32), np.ones(out_c, np.int32),
                      np.ones(out_c, np.int32))
        accs = np.stack([layer_acc(layer, a) for a in acts]).reshape(-1, out_c).astype(np.float64)
        spread = accs.std(axis=0) + 1.0
        bias = np.rint(rng.normal(0.0, 0.3, out_c) * spread).astype(np.int64)
        layer.bias = np.clip(bias, -(1 << 24), 1 << 24).astype(np.int32)
        accs = accs + layer.bias
        if relu:
            # map [0, p99.5] onto [-128, 127]: the zero point -128 is a real zero
            top = np.percentile(np.maximum(accs, 0.0), 99.5, axis=0) + 1.0
            scales = 255.0 / top
        else:
            top = np.percentile(np.abs(accs), 99.5, axis=0) + 1.0
            scales = 127.0 / top
        ms = [quantize_multiplier(float(s)) for s in scales]
        layer.mult = np.array([m for m, _ in ms], np.int32)
        layer.shift = np.array([s for _, s in ms], np.int32)
        model.layers.append(layer)
        acts = [run_layer(layer, a) for a in acts]
        h, w, c, zp = layer.out_h, layer.out_w, out_c, layer.out_zp
    return model


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model", help="write a seeded random model blob")
    m.add_argument("out", type=Path)
    m.add_argument("--seed", type=int, default=0)
    sub.add_parser("default", help=f"rewrite {DEFAULT_MODEL_PATH}")
    args = parser.parse_args(argv)
    out = DEFAULT_MODEL_PATH if args.cmd == "default" else args.out
    blob = pack_model(random_model(seed=0 if args.cmd == "default" else args.seed))
    out.write_bytes(blob)
    print(f"wrote {out} ({len(blob)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
