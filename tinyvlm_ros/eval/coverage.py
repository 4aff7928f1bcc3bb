"""Prompt coverage: whether a mode places at least one decoder prompt on each annotated object.

SAM can only return an object that some point prompt lands on, so coverage
bounds what any weights can find; it is a property of saliency and prompt
placement alone.  Thorough mode's prompts are the fixed 16x16 grid.  Fast
mode's depend on the masks the decoder returns (grid points inside an accepted
mask are skipped), so fast mode runs the segmenter's own code with
:class:`~tinyvlm_ros.eval.oracle.OracleSegmenter`, whose decoder answers with
the annotated regions.  Besides coverage the run counts, per photo, the
decoder prompts and the masks fast mode would hand to CLIP, and whether one of
those masks is the object ("proposed": box IoU >= 0.5) - with perfect masks,
the most the matcher could find.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.engine.segmenter import grid_points
from tinyvlm_ros.eval.dataset import SIZE_CLASSES, Dataset
from tinyvlm_ros.eval.oracle import OracleSegmenter, photo_regions
from tinyvlm_ros.geometry import box_iou

MODES = ("fast", "thorough")


def points_inside(mask: np.ndarray, points: Sequence[Tuple[float, float]]) -> int:
    """How many (x, y) points, in pixel coordinates, fall on a True pixel of an HxW mask."""
    h, w = mask.shape
    n = 0
    for x, y in points:
        xi, yi = int(np.floor(x)), int(np.floor(y))
        if 0 <= xi < w and 0 <= yi < h and mask[yi, xi]:
            n += 1
    return n


@dataclass
class ObjectCoverage:
    """Coverage of one annotated object in each mode."""

    image: str
    ann_id: int
    category: str
    size: str
    area: float
    prompts: Dict[str, int]     # mode -> decoder prompts inside the object
    proposed: Dict[str, Optional[bool]]  # mode -> a kept mask matches the object's box (IoU >= 0.5)


def measure(dataset: Dataset, *, input_size: int = 1024, points_per_side: int = 16,
            segmenter_options: Optional[Dict[str, Any]] = None, thorough_masks: bool = True,
            progress: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Measure prompt coverage of both modes on every photo of ``dataset``.

    Args:
        dataset: photos with instance masks.
        input_size: SAM input side the prompts are placed for (the low-res mask grid, and so
            coverage-skipping, scales with it).
        points_per_side: thorough mode's grid.
        segmenter_options: overrides for ``SamSegmenter.generate`` (e.g. ``{"fast_grid": 6}``).
        thorough_masks: also run thorough mode through the oracle, for its masks ("proposed");
            without it thorough's coverage comes from its grid alone (the same prompts, 10x faster)
            and its ``proposed`` is None.
        progress: called with one line per photo.

    Returns:
        ``{"objects": [ObjectCoverage as dict], "photos": [...], "summary": {...}}``; the summary
        holds, per mode and size class, objects, covered, covered fraction and proposed fraction.
    """
    seg = OracleSegmenter(input_size)
    opts = dict(segmenter_options or {})
    opts.setdefault("points_per_side", points_per_side)
    objects: List[ObjectCoverage] = []
    photos: List[Dict[str, Any]] = []
    for img in dataset.images:
        rgb = dataset.load(img)
        masks = [dataset.mask(o.ann_id) for o in img.objects]
        labels, n_obj = photo_regions(rgb, masks)
        prompts: Dict[str, List[Tuple[float, float]]] = {}
        kept: Dict[str, List[Tuple[float, float, float, float]]] = {}
        grid = [tuple(map(float, p)) for p in grid_points(img.width, img.height, points_per_side)]
        for mode in MODES if thorough_masks else ("fast",):
            seg.oracle.set_frame(labels, n_obj)
            out = seg.generate(rgb, mode, **opts)
            prompts[mode] = list(seg.oracle.prompts)
            kept[mode] = [c.box for c in out.candidates]
        if thorough_masks:
            # the thorough recipe's prompts are its grid, whatever the decoder answers
            got = np.array(sorted(prompts["thorough"]))
            if got.shape != (len(grid), 2) or not np.allclose(got, np.array(sorted(grid)), atol=0.05):
                raise RuntimeError("thorough mode did not prompt its grid: the segmenter changed, update "
                                   "tinyvlm_ros/eval/coverage.py")
        else:
            prompts["thorough"] = grid
        for o, m in zip(img.objects, masks):
            objects.append(ObjectCoverage(
                image=img.file_name, ann_id=o.ann_id, category=o.category, size=o.size, area=o.area,
                prompts={mode: points_inside(m, prompts[mode]) for mode in MODES},
                proposed={mode: any(box_iou(b, o.box) >= 0.5 for b in kept[mode]) if mode in kept else None
                          for mode in MODES}))
        row = {"image": img.file_name, "objects": len(img.objects),
               "fast_prompts": len(prompts["fast"]), "fast_masks": len(kept["fast"]),
               "thorough_prompts": len(prompts["thorough"]),
               "thorough_masks": len(kept["thorough"]) if "thorough" in kept else None,
               "fast_covered": sum(1 for o in objects[-len(img.objects):] if o.prompts["fast"]) if img.objects
               else 0}
        photos.append(row)
        progress(f"{img.file_name}: fast {row['fast_prompts']} prompts, {row['fast_masks']} masks; "
                 f"covered {row['fast_covered']}/{len(img.objects)}")
    return {"objects": [o.__dict__ for o in objects], "photos": photos,
            "summary": summarise(objects), "input_size": input_size, "points_per_side": points_per_side,
            "segmenter_options": opts}


def summarise(objects: Sequence[ObjectCoverage]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Per mode, per size class and "all": objects, covered, covered_frac, proposed_frac."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for mode in MODES:
        out[mode] = {}
        for size in SIZE_CLASSES + ("all",):
            sel = [o for o in objects if size == "all" or o.size == size]
            n = len(sel)
            cov = sum(1 for o in sel if o.prompts[mode] > 0)
            known = all(o.proposed[mode] is not None for o in sel)
            prop = sum(1 for o in sel if o.proposed[mode]) if known else None
            out[mode][size] = {"objects": n, "covered": cov, "covered_frac": round(cov / n, 4) if n else None,
                               "proposed": prop, "proposed_frac": round(prop / n, 4) if n and known else None,
                               "missed": [f"{o.image}:{o.category}#{o.ann_id}" for o in sel
                                          if o.prompts[mode] == 0]}
    return out
