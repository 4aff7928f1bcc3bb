"""Run-time side of a distilled MCU encoder (numpy only, no torch): what the node and the demo load.

A ``tinyvlm mcu distill`` output directory holds:

* ``model.tvm``: the int8 firmware model blob (flash it, or ``Emulator(..., model=...)``);
* ``text_projection.npy``: float32 [D_teacher, 128], applied to the teacher's unit text
  embeddings before the Matryoshka prefix is cut and quantized into the MCU's table;
* ``distill.json``: prefix lengths, the default prefix, the calibrated score threshold per
  prefix, the teacher it was distilled from, and the measured numbers.

:func:`engine_inputs` turns such a directory into the arguments of
:class:`tinyvlm_ros.mcu.backend.McuEngine`; :class:`DistilledMcuEngine` additionally asks the
MCU for its score map and refines the cell boxes to sub-cell edges on the host.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tinyvlm_ros.mcu.backend import McuEngine
from tinyvlm_ros.mcu.reference import Box, group_boxes
from tinyvlm_ros.mcu.spec import COVER_BIAS, COVER_TEMP, COVER_WEIGHT
from tinyvlm_ros.mcu.vocab import text_id

MODEL_FILE = "model.tvm"
PROJECTION_FILE = "text_projection.npy"
META_FILE = "distill.json"


TextEmbed = Callable[[List[str]], np.ndarray]


@dataclass
class DistilledModel:
    """A distilled encoder as stored on disk.

    Attributes:
        root: the output directory.
        model_path: the firmware model blob.
        projection: float32 [D_teacher, embed_dim] text projection.
        dims: trained prefix lengths.
        default_dim: the prefix an engine uses unless told otherwise.
        thresholds: calibrated cosine threshold per prefix length.
        model_id: the blob's model id (the table must carry it).
        teacher: the teacher model set directory recorded at training time.
        meta: everything in ``distill.json``.
    """

    root: Path
    model_path: Path
    projection: np.ndarray
    dims: List[int]
    default_dim: int
    thresholds: Dict[int, float]
    model_id: int
    teacher: Path
    meta: dict

    def project(self, text_embeddings: np.ndarray) -> np.ndarray:
        """Teacher text embeddings [N, D_teacher] -> the MCU's embedding space [N, embed_dim] float32."""
        t = np.asarray(text_embeddings, np.float32)
        if t.ndim != 2 or t.shape[1] != self.projection.shape[0]:
            raise ValueError(f"text embeddings must be [N, {self.projection.shape[0]}], got {t.shape}")
        t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        return (t @ self.projection).astype(np.float32)

    def text_embed(self, teacher_dir: Optional[Union[str, Path]] = None, threads: int = 1) -> TextEmbed:
        """Phrases -> projected embeddings, through the teacher's ONNX text tower (ONNX Runtime)."""
        return self.embedder(teacher_dir, threads)[0]

    def embedder(self, teacher_dir: Optional[Union[str, Path]] = None,
                 threads: int = 1) -> Tuple[TextEmbed, int]:
        """:meth:`text_embed` and its text id (what flash vocabulary rows must have been made with).

        The id names the text tower and tokenizer (their sha256), the caption template, the projection and
        the model: rows from any other embedder live in another space.
        """
        from tinyvlm_ros.engine.matcher import TEMPLATE, ClipMatcher
        from tinyvlm_ros.models.manifest import load_manifest, sha256_file

        models = load_manifest(Path(teacher_dir) if teacher_dir else self.teacher)
        matcher = ClipMatcher(models.clip, threads=threads)

        def digest(path: Path) -> str:
            rel = str(path.relative_to(models.root)) if path.is_relative_to(models.root) else path.name
            return models.files.get(rel) or sha256_file(path)

        identity = (f"distilled text|tower {digest(models.clip.text)}"
                    f"|tokenizer {digest(models.clip.tokenizer)}|template {TEMPLATE}"
                    f"|projection {zlib.crc32(self.projection.tobytes()):08x}"
                    f"|model {self.model_id:08x}")

        def embed(phrases: List[str]) -> np.ndarray:
            return self.project(matcher.embed_texts([matcher.prompt(p) for p in phrases]))

        return embed, text_id(identity)

    def threshold(self, dims: int) -> float:
        """Calibrated threshold of a prefix (nearest trained prefix when ``dims`` was not trained)."""
        if dims in self.thresholds:
            return self.thresholds[dims]
        near = min(self.thresholds, key=lambda d: abs(d - dims))
        return self.thresholds[near]


def load_distilled(root: Union[str, Path]) -> DistilledModel:
    """Read a distill output directory (JSON + .npy only; nothing pickled)."""
    d = Path(root)
    meta_path = d / META_FILE
    if not meta_path.exists():
        raise ValueError(f"{d} is not a distill output (no {META_FILE}); run `tinyvlm mcu distill` first")
    meta = json.loads(meta_path.read_text())
    model_path = d / MODEL_FILE
    if not model_path.exists():
        raise ValueError(f"{model_path} is missing")
    proj = np.load(d / PROJECTION_FILE, allow_pickle=False).astype(np.float32)
    if proj.ndim != 2 or proj.shape[0] != int(meta["teacher_dim"]) or proj.shape[1] != int(meta["embed_dim"]):
        raise ValueError(f"{PROJECTION_FILE} has shape {proj.shape}, "
                         f"distill.json says [{meta['teacher_dim']}, {meta['embed_dim']}]")
    return DistilledModel(d, model_path, proj, [int(x) for x in meta["dims"]], int(meta["default_dim"]),
                          {int(k): float(v) for k, v in meta["thresholds"].items()}, int(meta["model_id"]),
                          Path(meta["teacher"]), meta)


@dataclass
class EngineInputs:
    """Everything :class:`McuEngine` needs for a distilled model, plus the blob the MCU must run.

    ``model_id`` is the blob's: the engine refuses a device that runs another model.  ``text_id`` names
    ``text_embed`` (flash vocabulary rows are used only when they carry it).
    """

    model_path: Path
    text_embed: TextEmbed
    dims: int
    score_threshold: float
    cover_weight: float = COVER_WEIGHT
    model_id: int = 0
    text_id: int = 0

    def engine(self, link, refine: bool = True, **kwargs) -> McuEngine:
        """Make an engine on ``link`` (McuLink or URL); ``refine`` gives sub-cell boxes from the score map."""
        cls = DistilledMcuEngine if refine else McuEngine
        if refine:
            kwargs.setdefault("cover_weight", self.cover_weight)
        kwargs.setdefault("dims", self.dims)
        kwargs.setdefault("score_threshold", self.score_threshold)
        kwargs.setdefault("text_id", self.text_id)
        kwargs.setdefault("expect_model_id", self.model_id)
        return cls(link, self.text_embed, **kwargs)


def engine_inputs(root: Union[str, Path], teacher_dir: Optional[Union[str, Path]] = None,
                  dims: Optional[int] = None) -> EngineInputs:
    """Model blob path, projected text embedder, prefix and threshold of a distill output directory.

    Args:
        root: the ``--out`` directory of ``tinyvlm mcu distill``.
        teacher_dir: the teacher model set for the text tower (default: the one it was trained with).
        dims: prefix length (default: the directory's default prefix).
    """
    dm = load_distilled(root)
    d = dm.default_dim if dims is None else int(dims)
    if d <= 0 or d % 4 or d > int(dm.meta["embed_dim"]):
        raise ValueError(f"dims must be a multiple of 4 up to {dm.meta['embed_dim']}, got {d}")
    weights = {int(k): float(v) for k, v in dm.meta.get("cover_weights", {}).items()}
    weight = weights.get(d, weights.get(dm.default_dim, COVER_WEIGHT))
    embed, tid = dm.embedder(teacher_dir)
    return EngineInputs(dm.model_path, embed, d, dm.threshold(d), weight, dm.model_id, tid)


# ---------------------------------------------------------------------------------------------- boxes
Extent = Tuple[float, float, float, float]


def refine_box(scores_q15: np.ndarray, box: Box, grid_w: int, grid_h: int,
               cover_weight: float = COVER_WEIGHT) -> Extent:
    """Sub-cell box (x0, y0, x1, y1 in grid cells) from one query row's Q15 score map around a cell box.

    The distilled encoder is trained so that ``sigmoid((cos - 0.5) / 0.05)`` is the fraction of a
    region the object covers, which gives each cell's coverage.  Within the box grown by one cell the
    coverage's column (row) sums, divided by their peak, estimate the object's width (height) in
    cells; its coverage-weighted centre places it.
    """
    s = np.asarray(scores_q15, np.float64).reshape(grid_h, grid_w)
    y0, y1 = max(0, box.y0 - 1), min(grid_h, box.y1 + 1)
    x0, x1 = max(0, box.x0 - 1), min(grid_w, box.x1 + 1)
    win = s[y0:y1, x0:x1]
    sig = 1.0 / (1.0 + np.exp(-(win / 32768.0 - COVER_BIAS) / COVER_TEMP))
    cov = sig / (cover_weight - (cover_weight - 1.0) * sig)
    cov[cov < 0.05] = 0.0  # stray low scores on the table must not widen the box
    if cov.max() <= 0:
        return float(box.x0), float(box.y0), float(box.x1), float(box.y1)
    px, py = cov.sum(axis=0), cov.sum(axis=1)
    width = float(px.sum() / px.max())
    height = float(py.sum() / py.max())
    cx = x0 + float(np.sum((np.arange(len(px)) + 0.5) * px) / px.sum())
    cy = y0 + float(np.sum((np.arange(len(py)) + 0.5) * py) / py.sum())
    return (max(0.0, cx - width / 2), max(0.0, cy - height / 2), min(float(grid_w), cx + width / 2),
            min(float(grid_h), cy + height / 2))


def boxes_from_scores(scores_q15: np.ndarray, rows: Sequence[int], grid_w: int, grid_h: int, threshold: float,
                      max_boxes: int, refine: bool = True,
                      cover_weight: float = COVER_WEIGHT) -> List[Tuple[Box, Extent]]:
    """Group one score map into the firmware's boxes (reference grouping), each with its extent in cells."""
    boxes = group_boxes(scores_q15, grid_w, grid_h, rows, int(round(threshold * 32768)), max_boxes)
    out = []
    for b in boxes:
        if refine:
            ext = refine_box(scores_q15[b.rank], b, grid_w, grid_h, cover_weight)
        else:
            ext = (b.x0, b.y0, b.x1, b.y1)
        out.append((b, tuple(float(v) for v in ext)))
    return out


class DistilledMcuEngine(McuEngine):
    """:class:`McuEngine` that asks for the MCU's score map and refines each box to sub-cell edges.

    Args:
        cover_weight: the score -> coverage inversion of :func:`refine_box` (``distill.json``).
        others: as :class:`McuEngine`.
    """

    def __init__(self, *args, cover_weight: float = COVER_WEIGHT, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not cover_weight >= 1.0:
            raise ValueError(f"cover_weight must be >= 1, got {cover_weight}")
        self.cover_weight = float(cover_weight)

    want_scores = True

    def _extent(self, res, b: Dict[str, int]) -> Tuple[float, float, float, float]:
        """Return the box with its edges placed inside the border cells from the score map."""
        box = Box(b["row"], b["score_q15"], b["x0"], b["y0"], b["x1"], b["y1"], b["cells"], b["rank"])
        return refine_box(res.scores[b["rank"]], box, res.grid_w, res.grid_h, self.cover_weight)
