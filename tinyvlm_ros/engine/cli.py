"""``tinyvlm detect IMAGE -c "pick the pen"``: run the host detector on one image, print JSON."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tinyvlm_ros.types import DetectionResult

#: Environment variable naming the default model set directory.
MODELS_ENV = "TINYVLM_MODELS"

_PALETTE = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220)]


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add the top-level ``detect`` subcommand."""
    p = subparsers.add_parser("detect", help="detect a command's targets in an image (prints JSON)",
                              description=__doc__.splitlines()[0])
    p.add_argument("image", help="image file (PNG, JPEG, ...)")
    p.add_argument("-c", "--command", required=True, help='what to find, e.g. "pick the pen"')
    p.add_argument("--models", default=None,
                   help=f"model set directory (default: ${MODELS_ENV})")
    p.add_argument("--mode", choices=("fast", "thorough"), default="fast",
                   help="fast (default) or thorough (the reference recipe)")
    p.add_argument("--out", default=None, help="write an annotated PNG here")
    p.add_argument("--threshold", type=float, default=None, help="calibrated score threshold in [0, 1]")
    p.add_argument("--max", type=int, default=None, dest="max_detections", help="most detections")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--matryoshka-dim", type=int, default=None, help="CLIP embedding prefix length")
    p.set_defaults(func=run)


def load_image(path: str) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an image OpenCV can read.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} not found")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"image {p} cannot be read (not an image OpenCV understands)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def annotate(image: np.ndarray, result: DetectionResult) -> np.ndarray:
    """Draw masks, boxes and labels on a copy of an HxWx3 uint8 RGB frame."""
    out = image.copy()
    for det in result.detections:
        colour = _PALETTE[det.target_index % len(_PALETTE)]
        if det.mask is not None and det.mask.shape == out.shape[:2]:
            tint = np.array(colour, np.float32)
            out[det.mask] = (0.55 * out[det.mask] + 0.45 * tint).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in det.box_xyxy)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, 2)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + 2, y0 - 2)
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + 2), colour, -1)
        cv2.putText(out, text, (x0 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def result_to_dict(result: DetectionResult) -> dict:
    """JSON-ready view of a result (masks summarised by their pixel count)."""
    return {
        "targets": list(result.targets),
        "detections": [
            {"label": d.label, "score": round(float(d.score), 4),
             "box_xyxy": [round(float(v), 1) for v in d.box_xyxy], "target_index": int(d.target_index),
             "mask_pixels": int(d.mask.sum()) if d.mask is not None else None}
            for d in result.detections],
        "timings": {k: round(float(v), 4) for k, v in result.timings.items()},
        "work": {k: int(v) for k, v in result.work.items()},
    }


def run(args: argparse.Namespace, out=None) -> int:
    """Entry point of ``tinyvlm detect``; returns the exit code."""
    from tinyvlm_ros.engine.detector import Detector  # keeps `tinyvlm --help` fast

    models: Optional[str] = args.models or os.environ.get(MODELS_ENV)
    if not models:
        raise ValueError(f"no model set given: pass --models DIR or set ${MODELS_ENV}; get one with "
                         "`tinyvlm models fetch` or write a test set with `tinyvlm models make-test DIR`")
    image = load_image(args.image)
    det = Detector.from_dir(models, mode=args.mode, threads=args.threads, matryoshka_dim=args.matryoshka_dim)
    result = det.detect(image, args.command, score_threshold=args.threshold,
                        max_detections=args.max_detections, return_masks=bool(args.out))
    doc = {"image": str(args.image), "command": args.command, "mode": args.mode,
           "models": det.describe()["models"], **result_to_dict(result)}
    if args.out:
        rgb = annotate(image, result)
        if not cv2.imwrite(str(args.out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"cannot write annotated image to {args.out}")
        doc["annotated"] = str(args.out)
    text = json.dumps(doc, indent=2)
    if out is None:
        print(text)
    else:
        out.write(text + "\n")
    return 0
