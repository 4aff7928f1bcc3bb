"""Frames, commands and decoder-output substitution for the pipeline benchmark.

Two workloads:

``photos`` (default)
    The real photos shipped with the package (``tinyvlm_ros/data/photos``,
    COCO annotations), each scaled to fit a 640x480 frame.  Commands name the
    photo's own annotated categories ("pick the cup").
``scenes``
    Generated table-top scenes (:mod:`tinyvlm_ros.testing.scenes`), for the
    known-answer models whose decoder understands them.

With random weights SAM's masks are noise, so timing what they give would
measure nothing real (every filter rejects them, or coverage-skipping decides
on noise).  :func:`install_oracle` keeps every decoder graph call (its cost is
measured) and replaces only the *output values* with the regions of the
photo's annotations (the decoder oracle of :mod:`tinyvlm_ros.eval.oracle`):
saliency, prompt placement, windows and their fallback, coverage-skipping,
filters, NMS, crops and both CLIP towers run on real pixels and real code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

WORKLOADS = ("photos", "scenes")
FRAME_W, FRAME_H = 640, 480

#: Command templates: the first asks for an object of the photo, the re-query for another one.
COMMAND = "pick the {}"
REQUERY = ("take the {}", "where is the {}")


@dataclass
class Frame:
    """One benchmark frame.

    Attributes:
        name: where it comes from ("coffee.png", "scene 3").
        image: HxWx3 uint8 RGB.
        labels: HxW int32 oracle regions (-1: no mask), or None (the decoder's own outputs).
        n_objects: labels below this are annotated objects, the rest background "stuff".
        command: the timed command; requery: a different one for the re-query.
    """

    name: str
    image: np.ndarray
    labels: Optional[np.ndarray]
    n_objects: int
    command: str
    requery: str


def fit_frame(shape: Tuple[int, int], width: int = FRAME_W, height: int = FRAME_H) -> Tuple[int, int]:
    """(w, h) of an image of ``shape`` (h, w) scaled to fit ``width`` x ``height``, aspect kept."""
    h, w = shape
    s = min(width / float(w), height / float(h))
    return max(1, int(round(w * s))), max(1, int(round(h * s)))


def photo_frames(n: int, oracle: bool = True) -> List[Frame]:
    """Return the first ``n`` shipped photos (cycled when ``n`` is larger), scaled to fit 640x480.

    Args:
        n: number of frames.
        oracle: build each photo's region map for :func:`install_oracle`.

    Raises:
        FileNotFoundError: the package has no shipped photos (tinyvlm_ros/data/photos).
    """
    try:
        from tinyvlm_ros.eval.dataset import Dataset, shipped_photos
        from tinyvlm_ros.eval.oracle import photo_regions
    except ImportError as exc:
        raise FileNotFoundError(f"the photos workload needs tinyvlm_ros/eval and the shipped photos ({exc}); "
                                "use --workload scenes") from exc
    images_dir, annotations = shipped_photos()
    if not annotations.is_file():
        raise FileNotFoundError(f"no shipped photos at {images_dir}; use --workload scenes")
    ds = Dataset(annotations, images_dir)
    frames: List[Frame] = []
    for i in range(n):
        img = ds.images[i % len(ds.images)]
        rgb = ds.load(img)
        size = fit_frame(rgb.shape[:2])
        interp = cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_LINEAR
        frame = cv2.resize(rgb, size, interpolation=interp)
        labels, n_obj = None, 0
        if oracle:
            masks = [cv2.resize(ds.mask(o.ann_id).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                     for o in img.objects]
            labels, n_obj = photo_regions(frame, masks)
        cats = list(dict.fromkeys(o.category for o in img.objects)) or ["object"]
        other = cats[(i + 1) % len(cats)] if len(cats) > 1 else (img.absent[0] if img.absent else cats[0])
        frames.append(Frame(name=img.file_name, image=frame, labels=labels, n_objects=n_obj,
                            command=COMMAND.format(cats[i % len(cats)]),
                            requery=REQUERY[i % 2].format(other)))
    return frames


def scene_frames(n: int) -> List[Frame]:
    """Return ``n`` generated 640x480 table-top scenes with six objects, for the known-answer models."""
    from tinyvlm_ros.testing.scenes import make_scene

    frames = []
    for i in range(n):
        scene = make_scene(seed=1000 + i, width=FRAME_W, height=FRAME_H, n_objects=6)
        a, b = scene.objects[0].label, scene.objects[1].label
        frames.append(Frame(name=f"scene {1000 + i}", image=scene.image, labels=None, n_objects=0,
                            command=COMMAND.format(a), requery=REQUERY[i % 2].format(b)))
    return frames


def make_frames(workload: str, n: int, oracle: bool) -> List[Frame]:
    """Return ``n`` frames of ``workload`` ("photos" or "scenes")."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    if n < 1:
        raise ValueError(f"frames must be >= 1, got {n}")
    return photo_frames(n, oracle) if workload == "photos" else scene_frames(n)


class Oracle:
    """The annotated regions in place of a decoder's output values, for whole grids and windows.

    ``decode(points_s)`` answers [B,3,L,L] logits and [B,3] IoUs for S-frame
    points from the current frame's region map (:meth:`set_frame`); the wrapped
    graph calls (:func:`install_oracle`, the peer's decoder) take their windows
    out of it.
    """

    def __init__(self, input_size: int, low_size: int) -> None:
        from tinyvlm_ros.eval.oracle import RegionDecoder

        self.low_size = low_size
        self._regions = RegionDecoder(self._no_graph, input_size, low_size)
        self.active = False

    def _no_graph(self, emb, points_s):
        b = len(points_s)
        return np.zeros((b, 3, self.low_size, self.low_size), np.float32), np.zeros((b, 3), np.float32)

    def set_frame(self, frame: Frame) -> None:
        """Answer with ``frame``'s regions (a frame without a region map turns the oracle off)."""
        self.active = frame.labels is not None
        if self.active:
            self._regions.set_frame(frame.labels, frame.n_objects)

    def decode(self, points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Region masks [B,3,L,L] and predicted IoUs [B,3] for S-frame points."""
        return self._regions(None, np.asarray(points_s, np.float32))


def install_oracle(segmenter, oracle: Oracle) -> None:
    """Make ``segmenter``'s decoder graph calls answer with ``oracle``'s regions (graphs still run).

    Wraps :meth:`SamSegmenter.run_decoder` and :meth:`SamSegmenter.run_window_decoder`;
    a window's answer is the oracle's whole-grid answer cut to the window, so the
    segmenter's window-edge fallback sees the real region's extent.
    """
    run_full: Callable = segmenter.run_decoder
    run_window: Callable = segmenter.run_window_decoder

    def full(emb: np.ndarray, points_s: np.ndarray):
        masks, iou = run_full(emb, points_s)
        return oracle.decode(points_s) if oracle.active else (masks, iou)

    def window(windows: np.ndarray, origins: np.ndarray, points_s: np.ndarray):
        masks, iou = run_window(windows, origins, points_s)
        if not oracle.active:
            return masks, iou
        whole, iou = oracle.decode(points_s)
        w4 = 4 * windows.shape[-1]
        out = np.stack([whole[k, :, 4 * int(oy):4 * int(oy) + w4, 4 * int(ox):4 * int(ox) + w4]
                        for k, (ox, oy) in enumerate(origins)])
        return out, iou

    # instance attributes shadow the methods: the segmenter's decode calls these
    segmenter.run_decoder = full
    segmenter.run_window_decoder = window
