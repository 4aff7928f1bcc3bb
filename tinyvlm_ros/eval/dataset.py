"""Photos with COCO instance annotations, read through pycocotools and checked before any run.

A bad annotation file fails here, once, with a message that names the file,
the entry and what is wrong, never half-way through an evaluation.  LVIS's
per-image ``neg_category_ids`` (categories checked to be absent) and
``not_exhaustive_category_ids`` (categories with unannotated instances) are
honoured when present.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

import tinyvlm_ros

#: COCO's object size classes by annotated area in pixels (COCOeval's areaRng).
SIZE_CLASSES = ("small", "medium", "large")
_SMALL_MAX, _MEDIUM_MAX = 32 ** 2, 96 ** 2


def size_class(area: float) -> str:
    """COCO size class of an object of ``area`` pixels: small < 32^2 <= medium < 96^2 <= large."""
    if area < _SMALL_MAX:
        return "small"
    return "medium" if area < _MEDIUM_MAX else "large"


def shipped_photos() -> Tuple[Path, Path]:
    """Return the (image directory, annotations.json) of the photos shipped with the package."""
    root = Path(tinyvlm_ros.__file__).resolve().parent / "data" / "photos"
    return root, root / "annotations.json"


@dataclass
class GtObject:
    """One annotated object.

    Attributes:
        ann_id: the annotation's id.
        category: its category name ("cup").
        box: (x0, y0, x1, y1) in pixels, x1/y1 exclusive (from COCO's x, y, w, h).
        area: annotated area in pixels (COCO ``area``), which sets the size class.
        size: "small", "medium" or "large".
    """

    ann_id: int
    category: str
    box: Tuple[float, float, float, float]
    area: float
    size: str


@dataclass
class EvalImage:
    """A photo and what is known about it."""

    image_id: int
    file_name: str
    path: Path
    width: int
    height: int
    objects: List[GtObject] = field(default_factory=list)
    absent: List[str] = field(default_factory=list)          # checked absent (neg_category_ids)
    not_exhaustive: List[str] = field(default_factory=list)  # some instances not annotated

    def instances(self, category: str) -> List[GtObject]:
        """Objects of ``category`` in this photo."""
        return [o for o in self.objects if o.category == category]


class Dataset:
    """Photos and annotations of one COCO file.

    Args:
        annotations: COCO instances JSON.
        images: directory the images' ``file_name`` are relative to (default: the JSON's directory).

    Raises:
        FileNotFoundError: the JSON or an image it names is missing.
        ValueError: the JSON is malformed or inconsistent (the message says where and what to fix).
    """

    def __init__(self, annotations: Path, images: Optional[Path] = None) -> None:
        try:
            from pycocotools.coco import COCO
        except ImportError as exc:
            raise ImportError("the evaluation reads COCO files with pycocotools: pip install pycocotools "
                              "(or tinyvlm_ros[eval])") from exc

        self.annotations = Path(annotations)
        self.image_dir = Path(images) if images is not None else self.annotations.parent
        data = read_json_object(self.annotations, "annotation file",
                                "a COCO object with images, annotations and categories")
        _validate(data, self.annotations)
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            self.coco.createIndex()
        self.categories: Dict[int, str] = {c["id"]: c["name"].strip() for c in data["categories"]}
        self.skipped_crowd = 0
        self.images: List[EvalImage] = []
        for img in sorted(data["images"], key=lambda i: i["id"]):
            path = self.image_dir / img["file_name"]
            if not path.is_file():
                raise FileNotFoundError(f"{self.annotations}: image {img['file_name']!r} (id {img['id']}) "
                                        f"not found at {path}; pass --images DIR if they live elsewhere")
            objects = []
            for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=[img["id"]])):
                if ann.get("iscrowd", 0):
                    self.skipped_crowd += 1  # a crowd region is not one object a robot can pick
                    continue
                x, y, w, h = (float(v) for v in ann["bbox"])
                area = float(ann.get("area") or w * h)
                objects.append(GtObject(ann_id=int(ann["id"]), category=self.categories[ann["category_id"]],
                                        box=(x, y, x + w, y + h), area=area, size=size_class(area)))
            self.images.append(EvalImage(
                image_id=int(img["id"]), file_name=str(img["file_name"]), path=path, width=int(img["width"]),
                height=int(img["height"]), objects=objects,
                absent=[self.categories[c] for c in img.get("neg_category_ids", [])],
                not_exhaustive=[self.categories[c] for c in img.get("not_exhaustive_category_ids", [])]))
        if not self.images:
            raise ValueError(f"{self.annotations}: no images")

    @property
    def has_absent_lists(self) -> bool:
        """Whether the file says which categories are checked absent (neg_category_ids)."""
        return any("neg_category_ids" in img for img in self.coco.dataset["images"])

    def mask(self, ann_id: int) -> np.ndarray:
        """Return the HxW bool mask of an annotation (polygons or RLE; its box without a segmentation)."""
        ann = self.coco.anns[ann_id]
        if ann.get("segmentation"):
            with warnings.catch_warnings():
                # pycocotools' numpy-2 copy-keyword notice, once per mask, says nothing about the data
                warnings.simplefilter("ignore", DeprecationWarning)
                return self.coco.annToMask(ann).astype(bool)
        img = self.coco.imgs[ann["image_id"]]
        m = np.zeros((img["height"], img["width"]), bool)
        x, y, w, h = ann["bbox"]
        m[int(round(y)):int(round(y + h)), int(round(x)):int(round(x + w))] = True
        return m

    def load(self, image: EvalImage) -> np.ndarray:
        """Read the photo as HxWx3 uint8 RGB (grey photos replicated); check its size against the JSON."""
        from tinyvlm_ros.imaging import read_image_file

        rgb = read_image_file(image.path)
        if rgb.shape[:2] != (image.height, image.width):
            raise ValueError(f"{self.annotations}: image {image.file_name!r} is "
                             f"{rgb.shape[1]}x{rgb.shape[0]} but the annotations say "
                             f"{image.width}x{image.height}")
        return rgb


def read_json_object(path: Path, what: str, expected: str) -> dict:
    """Read a JSON file that must hold an object.

    Raises:
        FileNotFoundError: "<what> <path> not found".
        ValueError: not JSON, or not an object (the message says ``expected``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {expected}, got a JSON {type(data).__name__}")
    return data


def _check_entry(path: Path, section: str, i: int, entry: object, keys: tuple, seen: set) -> None:
    """One element of ``images`` or ``annotations``: an object with ``keys`` and an unused id."""
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: {section}[{i}] is not an object")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"{path}: {section}[{i}] lacks {', '.join(missing)}")
    if entry["id"] in seen:
        raise ValueError(f"{path}: {section[:-1]} id {entry['id']} appears twice")
    seen.add(entry["id"])


def _validate(data: dict, path: Path) -> None:
    """Check the parts of the COCO format the evaluation relies on; raise ValueError naming the entry."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: missing the {key!r} list (COCO instances format: images, annotations, "
                             "categories)")
    cats: Dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise ValueError(f"{path}: categories[{i}] needs an integer 'id' and a string 'name', got {c!r}")
        if not c["name"].strip():
            raise ValueError(f"{path}: category {c['id']} has an empty name; name it as a person would say "
                             "it ('cup')")
        if c["id"] in cats:
            raise ValueError(f"{path}: category id {c['id']} appears twice")
        if c["name"].strip() in cats.values():
            raise ValueError(f"{path}: category name {c['name']!r} appears twice")
        cats[c["id"]] = c["name"].strip()
    images = set()
    for i, img in enumerate(data["images"]):
        _check_entry(path, "images", i, img, ("id", "file_name", "width", "height"), images)
        size = (img["width"], img["height"])
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in size) or min(size) < 1:
            raise ValueError(f"{path}: image {img['id']} has size {img['width']}x{img['height']}")
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            unknown = [c for c in img.get(key, []) if c not in cats]
            if unknown:
                raise ValueError(f"{path}: image {img['id']} {key} names unknown categories {unknown}")
    ann_ids: set = set()
    for i, ann in enumerate(data["annotations"]):
        _check_entry(path, "annotations", i, ann, ("id", "image_id", "category_id", "bbox"), ann_ids)
        where = f"{path}: annotation {ann['id']}"
        if ann["image_id"] not in images:
            raise ValueError(f"{where} refers to image {ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in cats:
            raise ValueError(f"{where} refers to category {ann['category_id']}, which is not in 'categories'")
        box = ann["bbox"]
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ValueError(f"{where}: bbox must be [x, y, width, height] numbers, got {box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"{where}: bbox {box} has no area (width and height must be > 0)")
        seg = ann.get("segmentation")
        if seg and not (isinstance(seg, dict) and "counts" in seg and "size" in seg):
            if not isinstance(seg, list) or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                                                    for p in seg):
                raise ValueError(f"{where}: segmentation must be polygons ([[x0, y0, x1, y1, x2, y2, ...]]) "
                                 "or an RLE ({'counts', 'size'})")
