"""Distillation data: frames at the MCU's input size and the teacher's embedding for every region.

No torch here: the teacher is any model set with CLIP's ONNX interface, run through
ONNX Runtime (:class:`tinyvlm_ros.engine.matcher.ClipMatcher`).

* Generated scenes (:func:`scene_sample`) know their masks, so each grid cell's target is
  the coverage-weighted mix of the teacher's embeddings of the objects that overlap it
  (mask-aware crops, as the host matcher makes them) and of the bare table.  Scores of a
  region against a phrase then grow with how much of the object the region holds, which is
  what makes the firmware's hot cells trace the object's extent.
* Plain images (:func:`image_sample`) have no masks: each cell's target is the teacher's
  embedding of a window of 2 x 2 cells around it.

A sample also holds, for every phrase training may name (the *seen* phrases,
:mod:`tinyvlm_ros.distill.split`), how much of each cell objects of that phrase cover: the target
of the detection term.  Objects no seen phrase names (held-out words) add to no phrase's map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np

from tinyvlm_ros.engine.preprocess import clip_fill, mask_crop
from tinyvlm_ros.mcu.backend import resize_input
from tinyvlm_ros.testing.scenes import COLOURS, SHAPES, Scene

#: Every object a basic generated scene can hold, as the phrase a user would say.
LABELS: Tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
#: Phrases the region-text loss ranks against (the labels plus generic scene words).
EXTRA_PHRASES: Tuple[str, ...] = ("object", "background", "table surface")
#: A cell counts as showing an object (for accuracy) when the object covers this much of it.
LABEL_COVER = 0.5


class Teacher:
    """A CLIP-interface model set (``manifest.json`` + ONNX towers) used as the distillation teacher.

    Args:
        model_dir: model set directory (e.g. one written by ``make_known_answer_set``).
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, model_dir: Union[str, Path], threads: int = 2) -> None:
        from tinyvlm_ros.engine.matcher import ClipMatcher
        from tinyvlm_ros.models.manifest import load_manifest

        self.model_dir = Path(model_dir)
        self.models = load_manifest(self.model_dir)
        self.matcher = ClipMatcher(self.models.clip, threads=threads)
        self.dim = int(self.models.clip.embed_dim)
        self.size = int(self.models.clip.image_size)

    def embed_images(self, crops: np.ndarray) -> np.ndarray:
        """Uint8 [N, R, R, 3] crops -> unit float32 [N, D] image embeddings."""
        return self.matcher.embed_crops(crops)

    def embed_phrases(self, phrases: Sequence[str]) -> np.ndarray:
        """Phrases -> unit float32 [N, D] text embeddings of their caption prompts."""
        return self.matcher.embed_texts([self.matcher.prompt(p) for p in phrases])

    def fill(self) -> np.ndarray:
        """Return CLIP's mean colour as uint8 RGB: the value a mask-aware crop puts outside the mask."""
        return clip_fill(self.models.clip.mean)


def cell_coverage(mask: np.ndarray, grid_w: int, grid_h: int) -> np.ndarray:
    """Fraction of each grid cell a boolean HxW mask covers: float32 [grid_h, grid_w]."""
    return cv2.resize(mask.astype(np.float32), (grid_w, grid_h), interpolation=cv2.INTER_AREA)


@dataclass
class Sample:
    """One training frame.

    Attributes:
        image: uint8 [in_h, in_w, 3], the frame as the MCU sees it.
        target: float32 [grid_h, grid_w, D], unit teacher embedding per region.
        cover: float32 [grid_h, grid_w], how much of each region objects cover (1 for plain images).
        label: int16 [grid_h, grid_w], index into the seen phrases of the object covering >= half
            the region, -1 otherwise (no such object, or one no seen phrase names).
        phrase_cover: float16 [grid_h, grid_w, K], coverage of each region by objects of each seen phrase.
    """

    image: np.ndarray
    target: np.ndarray
    cover: np.ndarray
    label: np.ndarray
    phrase_cover: np.ndarray


def scene_sample(teacher: Teacher, scene: Scene, in_size: Tuple[int, int], grid: Tuple[int, int],
                 phrases: Sequence[str] = LABELS) -> Sample:
    """Region targets of a generated scene from its masks (see the module docstring).

    Args:
        teacher: the teacher model set.
        scene: a generated scene with exact masks.
        in_size: (width, height) of the MCU input.
        grid: (grid_w, grid_h) of the encoder's output.
        phrases: the seen phrases (labels and detection targets refer to them only).
    """
    gw, gh = grid
    img = scene.image
    fill = teacher.fill()
    crops = []
    for o in scene.objects:
        crops.append(mask_crop(img, o.box_xyxy, teacher.size, fill, o.mask))
    # the bare table: everything that is not an object, as one mask-aware crop
    table = np.ones(img.shape[:2], bool)
    for o in scene.objects:
        table &= ~o.mask
    h, w = img.shape[:2]
    crops.append(mask_crop(img, (0, 0, w, h), teacher.size, fill, table, margin=0.0))
    emb = teacher.embed_images(np.stack(crops))
    covers = np.stack([cell_coverage(o.mask, gw, gh) for o in scene.objects]) if scene.objects else \
        np.zeros((0, gh, gw), np.float32)
    total = np.clip(covers.sum(axis=0), 0.0, 1.0)
    target = np.tensordot(covers, emb[:-1], axes=(0, 0)) + (1.0 - total)[..., None] * emb[-1]
    target /= np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-9)
    label = np.full((gh, gw), -1, np.int16)
    phrase_cover = np.zeros((gh, gw, len(phrases)), np.float32)
    index = {p: k for k, p in enumerate(phrases)}
    for i, o in enumerate(scene.objects):
        k = index.get(o.label)
        if k is None:
            continue  # a held-out object: shown, never named
        label[covers[i] >= LABEL_COVER] = k
        phrase_cover[..., k] += covers[i]
    return Sample(resize_input(img, *in_size), target.astype(np.float32), total.astype(np.float32), label,
                  np.clip(phrase_cover, 0.0, 1.0).astype(np.float16))


def image_sample(teacher: Teacher, image: np.ndarray, in_size: Tuple[int, int],
                 grid: Tuple[int, int], n_phrases: int = len(LABELS)) -> Sample:
    """Region targets of a plain HxWx3 uint8 RGB image: the teacher on a 2 x 2-cell window per cell."""
    gw, gh = grid
    h, w = image.shape[:2]
    cw, ch = w / gw, h / gh
    fill = teacher.fill()
    crops = [mask_crop(image, ((gx - 0.5) * cw, (gy - 0.5) * ch, (gx + 1.5) * cw, (gy + 1.5) * ch),
                       teacher.size, fill, margin=0.0)
             for gy in range(gh) for gx in range(gw)]
    emb = teacher.embed_images(np.stack(crops)).reshape(gh, gw, -1)
    return Sample(resize_input(image, *in_size), emb.astype(np.float32), np.ones((gh, gw), np.float32),
                  np.full((gh, gw), -1, np.int16), np.zeros((gh, gw, n_phrases), np.float16))


def read_images(directory: Union[str, Path]) -> List[Path]:
    """PNG/JPEG files of a directory, sorted; ValueError when there are none."""
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"--images {d} is not a directory")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise ValueError(f"no PNG or JPEG images in {d}")
    return files


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def stack(samples: Sequence[Sample]) -> dict:
    """Stack samples into a dict of arrays (``image``, ``target``, ``cover``, ``label``, ``phrase_cover``)."""
    if not samples:
        raise ValueError("no samples")
    return {k: np.stack([getattr(s, k) for s in samples])
            for k in ("image", "target", "cover", "label", "phrase_cover")}
