#!/usr/bin/env python3
"""Make the COCO annotations of the shipped photos (tinyvlm_ros/data/photos/).

How the masks were made: every object below has a box read off the photo by
eye (on a coordinate grid) and a method that turns the box into a mask:

* ``grabcut``: OpenCV GrabCut initialised from the box, optionally with
  polygons of sure foreground (``fg``) and sure background (``bg``) painted in;
* ``otsu``: Otsu's threshold of the box's grey levels, the component under the
  box centre, holes filled (well separated objects: coins, lamps);
* ``polygon``: the polygon itself, typed from the grid (thin or lattice
  structures that no colour model separates).

``hull`` replaces a mask by its convex hull (coins, cups); ``minus`` removes
the masks of the named objects in front of it, so each mask holds the
object's *visible* pixels as COCO does.  Then the overlays are rendered
(``--overlays DIR``: one PNG per photo, every mask outlined and labelled) and
checked by eye; the specs were corrected until every outline sat on its
object.  The committed annotations.json is that checked result; rerunning
this script reproduces it.

    python tools/annotate_photos.py --check           # differs from the committed file? (exit 1)
    python tools/annotate_photos.py --write --overlays /tmp/overlays
    python tools/annotate_photos.py --copy-sources    # (re)copy the photos from scikit-image/matplotlib
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "tinyvlm_ros" / "data" / "photos"

Poly = Sequence[Tuple[float, float]]


@dataclass
class Obj:
    """One object of a photo: a category, a box (x0, y0, x1, y1; x1/y1 exclusive) and how to mask it."""

    category: str
    box: Tuple[int, int, int, int]
    method: str = "grabcut"
    polygon: Optional[Poly] = None
    fg: List[Poly] = field(default_factory=list)
    bg: List[Poly] = field(default_factory=list)
    hull: bool = False
    minus: List[str] = field(default_factory=list)
    name: str = ""
    iters: int = 6
    parts: bool = False  # keep every visible part (an object split by one in front of it)
    add: List[Poly] = field(default_factory=list)  # polygons joined to the mask (thin parts)


@dataclass
class Photo:
    """A shipped photo, where it comes from, and its objects."""

    file: str
    source: str  # "skimage:<file>" or "matplotlib:<file>"
    objects: List[Obj]
    # categories verified absent (LVIS's neg_category_ids): commands for them must find nothing
    absent: List[str] = field(default_factory=list)
    licence: str = "cc0"  # a key of LICENCES; author and source are in the README beside the photos


#: COCO ``licenses`` entries of the shipped photos.
LICENCES = {
    "cc0": {"id": 1, "name": "CC0 1.0 Universal (public domain dedication)",
            "url": "https://creativecommons.org/publicdomain/zero/1.0/"},
    "pd": {"id": 2, "name": "Public domain", "url": ""},
    "nkcr": {"id": 3, "name": "No known copyright restrictions",
             "url": "https://www.flickr.com/commons/usage/"},
}


def bar(x0: float, y0: float, x1: float, y1: float, width: float) -> Poly:
    """Polygon of a straight bar of ``width`` pixels from (x0, y0) to (x1, y1): tripod legs, poles."""
    d = np.array([x1 - x0, y1 - y0], np.float64)
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9) * width / 2.0
    a, b = np.array([x0, y0], np.float64), np.array([x1, y1], np.float64)
    return [tuple(v) for v in (a + n, b + n, b - n, a - n)]


def _coins() -> List[Obj]:
    boxes = [
        (22, 33, 67, 75), (80, 38, 120, 74), (131, 28, 180, 74), (192, 29, 240, 73), (254, 33, 297, 72),
        (304, 15, 364, 72),
        (24, 102, 67, 146), (83, 106, 123, 146), (133, 108, 174, 146), (185, 104, 227, 145),
        (244, 95, 297, 145), (316, 104, 357, 146),
        (24, 177, 63, 218), (79, 173, 125, 218), (134, 178, 175, 218), (187, 169, 237, 218),
        (250, 170, 298, 218), (314, 155, 380, 220),
        (17, 230, 75, 290), (92, 243, 137, 288), (143, 235, 201, 291), (219, 239, 270, 288),
        (274, 237, 327, 290), (334, 245, 381, 290),
    ]
    return [Obj("coin", b, method="otsu", hull=True) for b in boxes]


PHOTO_SPECS: List[Photo] = [
    Photo("coffee.png", "skimage:coffee.png", [
        Obj("cup", (172, 16, 412, 308),
            fg=[[(200, 60), (380, 60), (380, 200), (215, 200)],
                [(205, 240), (235, 240), (232, 290), (207, 290)]],
            bg=[[(330, 235), (400, 235), (400, 320), (330, 320)]], name="cup"),
        Obj("spoon", (322, 236, 412, 328), fg=[[(335, 260), (395, 260), (390, 310), (340, 310)]],
            add=[[(398, 68), (402, 100), (403, 120), (400, 150), (393, 180), (388, 200), (383, 215),
                  (376, 240), (372, 250), (386, 250), (390, 230), (396, 210), (402, 190), (410, 160),
                  (414, 130), (418, 100), (423, 75), (418, 66), (405, 64)]],
            minus=["cup"], name="spoon"),
        Obj("saucer", (74, 68, 482, 392), method="ellipse",
            polygon=[(175, 70), (88, 150), (78, 210), (85, 280), (98, 320), (127, 360), (160, 380),
                     (200, 388),
                     (280, 391), (340, 390), (427, 120), (452, 160), (477, 200), (475, 260), (457, 320),
                     (432, 360), (405, 382)],
            minus=["cup", "spoon"], name="saucer"),
    ], absent=["cat", "coin", "person", "clock", "rocket", "helmet"], licence="cc0"),
    Photo("astronaut.png", "skimage:astronaut.png", [
        Obj("helmet", (276, 340, 512, 512), method="ellipse",
            polygon=[(278, 511), (282, 470), (292, 430), (310, 395), (340, 365), (380, 347), (420, 343),
                     (455, 352),
                     (480, 370), (500, 400), (508, 430)], name="helmet"),
        Obj("person", (18, 12, 368, 512),
            fg=[[(190, 60), (260, 60), (260, 150), (190, 150)], [(60, 300), (250, 300), (250, 480),
                                                                 (60, 480)],
                [(200, 30), (260, 30), (260, 55), (200, 55)], [(160, 210), (200, 170), (255, 170),
                                                               (290, 210), (290, 250), (160, 250)],
                [(240, 300), (340, 330), (360, 345), (300, 420), (290, 511), (240, 511)]],
            bg=[[(0, 0), (45, 0), (55, 100), (65, 200), (40, 255), (12, 330), (8, 512), (0, 512)],
                [(360, 0), (470, 0), (470, 260), (370, 260)]],
            minus=["helmet"], name="person"),
        Obj("flag", (0, 0, 100, 512), method="polygon",
            polygon=[(0, 0), (50, 0), (62, 40), (60, 100), (75, 120), (82, 160), (92, 200), (100, 222),
                     (100, 511),
                     (0, 511)], minus=["person"]),
        Obj("space shuttle", (350, 0, 474, 276),
            fg=[[(405, 10), (425, 10), (425, 200), (405, 200)], [(440, 50), (450, 50), (450, 200),
                                                                 (440, 200)],
                [(384, 60), (391, 60), (391, 200), (384, 200)], [(370, 205), (445, 205), (445, 215),
                                                                 (370, 215)],
                [(378, 222), (390, 222), (372, 266), (367, 266)], [(436, 228), (454, 228), (454, 264),
                                                                   (436, 264)],
                [(392, 232), (410, 232), (410, 250), (392, 250)]],
            bg=[[(350, 0), (375, 0), (372, 180), (350, 180)], [(458, 0), (474, 0), (474, 190), (458, 190)],
                [(350, 0), (396, 0), (396, 38), (350, 38)], [(436, 0), (474, 0), (474, 45), (436, 45)]]),
        Obj("patch", (130, 345, 210, 425)),
        Obj("name tag", (276, 338, 332, 380)),
    ], absent=["cup", "coin", "cat", "clock", "rocket", "tripod"], licence="pd"),
    Photo("camera.png", "skimage:camera.png", [
        Obj("camera", (248, 134, 330, 196), fg=[[(265, 145), (315, 145), (315, 160), (265, 160)]],
            bg=[[(302, 170), (330, 170), (330, 196), (302, 196)]], name="camera"),
        Obj("tripod", (226, 190, 410, 512), method="polygon",
            polygon=[(281, 312), (305, 312), (311, 320), (311, 342), (300, 347), (288, 347), (277, 340),
                     (277, 320)],
            add=[bar(294, 196, 294, 488, 11), bar(279, 342, 231, 512, 12), bar(310, 335, 404, 512, 9),
                 bar(307, 317, 333, 304, 6), [(325, 299), (338, 299), (338, 308), (325, 308)],
                 [(228, 484), (246, 484), (246, 500), (228, 500)], [(380, 473), (396, 473), (396, 490),
                                                                    (380, 490)],
                 bar(294, 482, 248, 488, 4), bar(288, 473, 260, 468, 4), bar(298, 482, 383, 482, 3)],
            minus=["camera"], name="tripod"),
        Obj("person", (0, 62, 335, 512),
            fg=[[(190, 90), (240, 90), (250, 190), (170, 190)],
                [(20, 250), (140, 250), (140, 500), (20, 500)]],
            bg=[[(208, 314), (280, 320), (280, 511), (158, 511), (155, 450), (152, 400), (168, 372),
                 (192, 336)]], minus=["camera", "tripod"], name="person"),
        Obj("tower", (408, 114, 436, 198), fg=[[(416, 135), (428, 135), (428, 185), (416, 185)]]),
    ], absent=["cup", "coin", "cat", "clock", "rocket", "helmet", "spoon"]),
    Photo("grace_hopper.jpg", "matplotlib:grace_hopper.jpg", [
        Obj("person", (30, 18, 512, 600),
            fg=[[(190, 60), (330, 60), (340, 300), (200, 300)], [(120, 420), (480, 440), (480, 590),
                                                                 (80, 590)],
                [(230, 340), (330, 340), (300, 420), (240, 420)]],
            bg=[[(0, 0), (140, 0), (140, 330), (30, 360), (25, 599), (0, 599)],
                [(385, 0), (511, 0), (511, 400), (440, 370), (385, 330)]],
            name="person"),
        Obj("cap", (148, 20, 376, 180), fg=[[(190, 60), (340, 60), (360, 120), (170, 130)]],
            bg=[[(175, 158), (355, 158), (355, 180), (175, 180)]], name="cap"),
        Obj("glasses", (166, 165, 364, 235), method="polygon",
            polygon=[(168, 178), (180, 175), (215, 177), (250, 180), (262, 182), (290, 178), (320, 172),
                     (350, 168), (362, 172), (358, 185), (352, 200), (345, 215), (330, 226), (305, 228),
                     (285, 220), (275, 205), (265, 195), (255, 195), (248, 210), (240, 225), (225, 232),
                     (205, 232), (192, 225), (185, 212), (180, 198), (172, 188)]),
        Obj("flag", (0, 0, 245, 600), method="polygon",
            polygon=[(0, 0), (245, 0), (245, 350), (40, 599), (0, 599)], minus=["person", "cap"]),
        Obj("name tag", (76, 480, 170, 520), method="otsu", hull=True),
        Obj("ribbon bar", (320, 486, 454, 529), method="polygon",
            polygon=[(365, 488), (408, 488), (408, 500), (450, 500), (452, 527), (322, 527), (345, 500),
                     (365, 500)]),
        Obj("button", (230, 572, 261, 600), method="otsu", hull=True),
    ], absent=["cup", "coin", "cat", "clock", "rocket", "helmet", "tripod", "spoon"], licence="pd"),
    Photo("rocket.jpg", "skimage:rocket.jpg", [
        Obj("light", b, method="box_ellipse", name=f"light{k}")
        for k, b in enumerate([(79, 346, 87, 354), (144, 371, 157, 384), (187, 388, 199, 404),
                               (355, 388, 372, 406),
                               (428, 389, 439, 400), (101, 409, 120, 426), (441, 412, 459, 427)])
    ] + [
        Obj("rocket", (299, 118, 343, 410),
            fg=[[(316, 150), (327, 150), (327, 400), (316, 400)],
                [(318, 130), (324, 130), (328, 148), (314, 148)]]),
        Obj("tower", (0, 0, 92, 427), method="polygon", polygon=[(45, 0), (91, 0), (74, 426), (0, 426),
                                                                 (0, 345)],
            minus=["light0"]),
        Obj("tower", (162, 120, 206, 421), method="polygon",
            polygon=[(197, 121), (205, 121), (204, 200), (202, 420), (163, 420), (189, 195), (196, 190)],
            minus=["light2"]),
        Obj("tower", (438, 120, 480, 421), method="polygon",
            polygon=[(446, 121), (452, 121), (452, 190), (458, 198), (479, 420), (439, 420), (441, 198),
                     (446, 190)],
            minus=["light6"]),
        Obj("tower", (558, 0, 640, 427), method="polygon",
            polygon=[(559, 0), (598, 0), (639, 265), (639, 426), (580, 426)]),
    ], absent=["cup", "coin", "cat", "clock", "helmet", "tripod", "spoon", "person"], licence="pd"),
    Photo("chelsea.png", "skimage:chelsea.png", [
        Obj("cat", (0, 0, 451, 300), fg=[[(40, 60), (330, 60), (320, 280), (60, 280)]],
            bg=[[(392, 75), (450, 75), (450, 299), (372, 299), (378, 200)], [(405, 0), (450, 0), (450, 75),
                                                                             (405, 40)]]),
        Obj("eye", (132, 85, 207, 150), fg=[[(150, 100), (190, 100), (190, 135), (150, 135)]]),
        Obj("eye", (296, 106, 347, 166), fg=[[(305, 120), (335, 120), (335, 150), (305, 150)]]),
        Obj("nose", (226, 220, 295, 265), method="polygon",
            polygon=[(228, 228), (250, 222), (275, 225), (292, 232), (285, 245), (268, 252), (262, 262),
                     (255, 262),
                     (248, 250), (235, 240)]),
    ], absent=["cup", "coin", "clock", "helmet", "tripod", "spoon", "person", "rocket"]),
    Photo("clock_motion.png", "skimage:clock_motion.png", [
        Obj("clock", (128, 82, 292, 222), method="ellipse",
            polygon=[(141, 152), (150, 120), (175, 98), (210, 92), (245, 97), (270, 115), (282, 152),
                     (272, 190),
                     (245, 208), (210, 213), (175, 207), (150, 188)]),
    ], absent=["cup", "coin", "cat", "helmet", "tripod", "spoon", "person", "rocket"], licence="pd"),
    Photo("coins.png", "skimage:coins.png", _coins(),
          absent=["cup", "spoon", "cat", "person", "clock", "helmet"], licence="nkcr"),
]


# -- mask making --------------------------------------------------------------------------------
def _poly_mask(shape: Tuple[int, int], polys: Sequence[Poly]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for p in polys:
        cv2.fillPoly(m, [np.round(np.asarray(p, np.float64)).astype(np.int32)], 1)
    return m.astype(bool)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(m)
    cv2.drawContours(out, cs, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def _largest(mask: np.ndarray, near: Optional[Tuple[int, int]] = None) -> np.ndarray:
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.astype(bool)
    if near is not None and lab[near[1], near[0]] > 0:
        return lab == lab[near[1], near[0]]
    return lab == (1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA])))


def _parts(mask: np.ndarray, min_area: int = 30) -> np.ndarray:
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return np.isin(lab, [i for i in range(1, n) if st[i, cv2.CC_STAT_AREA] >= min_area])


def _hull(mask: np.ndarray) -> np.ndarray:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    if cs:
        cv2.fillPoly(out, [cv2.convexHull(np.concatenate(cs))], 1)
    return out.astype(bool)


def make_mask(image: np.ndarray, obj: Obj) -> np.ndarray:
    """HxW bool mask of ``obj`` in an HxWx3 uint8 RGB ``image`` (before ``minus``)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = obj.box
    if obj.method == "polygon":
        mask = _poly_mask((h, w), [obj.polygon])
    elif obj.method == "box_ellipse":
        # a round light or knob: the ellipse inscribed in its box
        out = np.zeros((h, w), np.uint8)
        centre = ((x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5)
        cv2.ellipse(out, (centre, (x1 - x0, y1 - y0), 0.0), 1, thickness=cv2.FILLED)
        mask = out.astype(bool)
    elif obj.method == "ellipse":
        # points read off the object's outline; the least-squares ellipse through them
        (cx, cy), (ax, ay), ang = cv2.fitEllipse(np.asarray(obj.polygon, np.float32))
        out = np.zeros((h, w), np.uint8)
        cv2.ellipse(out, ((cx, cy), (ax, ay), ang), 1, thickness=cv2.FILLED)
        mask = out.astype(bool)
    elif obj.method == "otsu":
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        pad = 4
        bx0, by0, bx1, by1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        roi = cv2.GaussianBlur(grey[by0:by1, bx0:bx1], (0, 0), 1.2)
        _, on = cv2.threshold(roi, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        on = cv2.morphologyEx(on, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        on = cv2.morphologyEx(on, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
        mask = np.zeros((h, w), bool)
        mask[by0:by1, bx0:bx1] = on.astype(bool)
        box = np.zeros((h, w), bool)
        box[y0:y1, x0:x1] = True
        mask &= box
        mask = _fill_holes(_largest(mask, ((x0 + x1) // 2, (y0 + y1) // 2)))
    elif obj.method == "grabcut":
        gc = np.full((h, w), cv2.GC_BGD, np.uint8)
        gc[y0:y1, x0:x1] = cv2.GC_PR_FGD
        if obj.polygon is not None:
            gc[y0:y1, x0:x1] = cv2.GC_PR_BGD
            gc[_poly_mask((h, w), [obj.polygon])] = cv2.GC_PR_FGD
        gc[_poly_mask((h, w), obj.bg)] = cv2.GC_BGD
        gc[_poly_mask((h, w), obj.fg)] = cv2.GC_FGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), gc, None, bgd, fgd, obj.iters,
                    cv2.GC_INIT_WITH_MASK)
        mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        mask = _fill_holes(mask if obj.parts else _largest(mask))
    else:
        raise ValueError(f"unknown method {obj.method!r}")
    if obj.add:
        mask = mask | _poly_mask((h, w), obj.add)
    if obj.hull:
        mask = _hull(mask)
    return mask


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons ([x0, y0, x1, y1, ...] per part) of a bool mask, outlines on pixel edges."""
    # tracing a 2x upsampled mask puts the outline between pixels, so the polygon re-rasterises
    # to about the same pixels (pycocotools fills polygons on pixel centres)
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cs, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in cs:
        if cv2.contourArea(c) < 8:
            continue
        c = cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2).astype(np.float64)
        if len(c) < 3:
            continue
        c = (c + 0.5) / 2.0
        polys.append([round(float(v), 1) for v in c.ravel()])
    return polys


def load_rgb(path: Path) -> np.ndarray:
    """Any of the shipped photos as HxWx3 uint8 RGB (grey photos are replicated)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def build(photos: Sequence[Photo], photo_dir: Path) -> Tuple[dict, Dict[str, List[Tuple[str, np.ndarray]]]]:
    """Annotate every photo; return the COCO dict and the masks per file (for overlays)."""
    from pycocotools import mask as mask_utils

    categories: List[str] = []
    for p in photos:
        for name in [o.category for o in p.objects] + p.absent:
            if name not in categories:
                categories.append(name)
    cat_id = {c: i + 1 for i, c in enumerate(categories)}
    coco = {"info": {"description": "tinyvlm_ros shipped photos: public-domain / CC0 images with "
                                    "hand-checked instance masks (see README.md)", "version": "1"},
            "licenses": sorted(LICENCES.values(), key=lambda v: v["id"]), "images": [], "annotations": [],
            "categories": [{"id": cat_id[c], "name": c, "supercategory": "object"} for c in categories]}
    all_masks: Dict[str, List[Tuple[str, np.ndarray]]] = {}
    ann_id = 1
    for image_id, p in enumerate(photos, start=1):
        img = load_rgb(photo_dir / p.file)
        h, w = img.shape[:2]
        masks: Dict[str, np.ndarray] = {}
        order: List[Tuple[str, str]] = []
        for k, o in enumerate(p.objects):
            key = o.name or f"{o.category}#{k}"
            masks[key] = make_mask(img, o)
            order.append((key, o.category))
        for k, o in enumerate(p.objects):
            key = o.name or f"{o.category}#{k}"
            for other in o.minus:
                masks[key] = masks[key] & ~masks[other]
            masks[key] = _parts(masks[key]) if o.parts else _largest(masks[key])
        coco["images"].append({"id": image_id, "file_name": p.file, "width": w, "height": h,
                               "license": LICENCES[p.licence]["id"],
                               "neg_category_ids": sorted(cat_id[c] for c in p.absent),
                               "not_exhaustive_category_ids": []})
        all_masks[p.file] = []
        for key, cat in order:
            polys = mask_to_polygons(masks[key])
            rles = mask_utils.frPyObjects(polys, h, w)
            rle = mask_utils.merge(rles)
            area = float(mask_utils.area(rle))
            x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
            coco["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": cat_id[cat],
                                        "segmentation": polys, "area": area,
                                        "bbox": [round(x, 1), round(y, 1), round(bw, 1), round(bh, 1)],
                                        "iscrowd": 0})
            all_masks[p.file].append((cat, mask_utils.decode(rle).astype(bool)))
            ann_id += 1
    return coco, all_masks


def dump_coco(coco: dict) -> str:
    """COCO JSON with one image, annotation or category per line (diffs stay readable)."""
    parts = []
    for key, value in coco.items():
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(v, separators=(",", ":")) for v in value)
            parts.append(f' "{key}": [\n{rows}\n ]' if value else f' "{key}": []')
        else:
            parts.append(f' "{key}": {json.dumps(value)}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def render_overlays(photo_dir: Path, masks: Dict[str, List[Tuple[str, np.ndarray]]], out: Path) -> None:
    """One PNG per photo at 2x: every mask outlined in its own colour and labelled with category and index."""
    out.mkdir(parents=True, exist_ok=True)
    palette = [(0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 128, 255), (255, 0, 0),
               (128, 255, 128), (255, 128, 0), (0, 0, 255), (255, 255, 255)]
    for file, items in masks.items():
        img = cv2.cvtColor(load_rgb(photo_dir / file), cv2.COLOR_RGB2BGR)
        img = cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        labels = []
        for k, (cat, m) in enumerate(items):
            colour = palette[k % len(palette)]
            m2 = cv2.resize(m.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            cs, _ = cv2.findContours(m2, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img, cs, -1, colour, 2)
            ys, xs = np.nonzero(m2)
            if len(xs):
                labels.append((f"{k}:{cat}", (int(np.median(xs)) - 20, int(np.median(ys))), colour))
        for text, org, colour in labels:
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            cv2.rectangle(img, (org[0] - 1, org[1] - th - 2), (org[0] + tw + 1, org[1] + 3), (0, 0, 0), -1)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        cv2.imwrite(str(out / (Path(file).stem + ".png")), img)


def copy_sources(photos: Sequence[Photo], photo_dir: Path) -> None:
    """Copy each photo byte for byte from the installed scikit-image / matplotlib package."""
    photo_dir.mkdir(parents=True, exist_ok=True)
    for p in photos:
        lib, name = p.source.split(":", 1)
        if lib == "skimage":
            import skimage

            src = Path(skimage.__file__).parent / "data" / name
        elif lib == "matplotlib":
            import matplotlib

            src = Path(matplotlib.get_data_path()) / "sample_data" / name
        else:
            raise ValueError(f"unknown source {p.source!r}")
        shutil.copyfile(src, photo_dir / p.file)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=PHOTOS, help="photo directory (default: the package's)")
    ap.add_argument("--copy-sources", action="store_true",
                    help="copy the photos from the installed libraries")
    ap.add_argument("--write", action="store_true", help="write annotations.json")
    ap.add_argument("--check", action="store_true", help="exit 1 if annotations.json would change")
    ap.add_argument("--overlays", type=Path, help="render overlay PNGs into this directory")
    args = ap.parse_args(argv)
    if args.copy_sources:
        copy_sources(PHOTO_SPECS, args.photos)
    coco, masks = build(PHOTO_SPECS, args.photos)
    text = dump_coco(coco)
    target = args.photos / "annotations.json"
    n = len(coco["annotations"])
    print(f"{len(coco['images'])} photos, {n} objects, {len(coco['categories'])} categories")
    if args.overlays:
        render_overlays(args.photos, masks, args.overlays)
    if args.check:
        same = target.is_file() and target.read_text() == text
        print("annotations.json is current" if same else "annotations.json differs from the specs")
        return 0 if same else 1
    if args.write:
        target.write_text(text)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
