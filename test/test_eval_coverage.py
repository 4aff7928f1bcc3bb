"""Prompt coverage and the annotated-region decoder oracle, on hand-made cases and the shipped photos."""

import json

import cv2
import numpy as np
import pytest

from tinyvlm_ros import cli
from tinyvlm_ros.eval.coverage import measure, points_inside
from tinyvlm_ros.eval.dataset import Dataset, shipped_photos
from tinyvlm_ros.eval.oracle import NOTHING_IOU, OBJECT_IOUS, STUFF_IOUS, OracleSegmenter, RegionDecoder, \
    photo_regions


def _square(x0, y0, x1, y1):
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def write_coco(tmp_path, image, objects):
    """A one-photo COCO file: objects are (name, (x0, y0, x1, y1)) squares, x1/y1 exclusive."""
    cv2.imwrite(str(tmp_path / "scene.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    names = sorted({n for n, _ in objects})
    anns = [{"id": k + 1, "image_id": 1, "category_id": names.index(n) + 1, "iscrowd": 0,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]),
             # polygon on pixel edges: pycocotools fills exactly the pixels of the square
             "segmentation": [_square(b[0] - 0.5, b[1] - 0.5, b[2] - 0.5, b[3] - 0.5)]}
            for k, (n, b) in enumerate(objects)]
    h, w = image.shape[:2]
    coco = {"images": [{"id": 1, "file_name": "scene.png", "width": w, "height": h}],
            "annotations": anns, "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return tmp_path / "ann.json"


def test_points_inside_counts_points_on_the_mask():
    m = np.zeros((10, 10), bool)
    m[2:5, 3:6] = True
    assert points_inside(m, [(3.0, 2.0), (5.9, 4.9), (6.0, 4.0), (2.9, 3.0), (-1, 3), (30, 30)]) == 2


def test_coverage_of_a_hand_made_photo(tmp_path):
    # 320x320: the reference grid samples x, y = 10, 30, ..., 310
    img = np.full((320, 320, 3), 128, np.uint8)
    img[100:140, 100:140] = (220, 30, 30)   # holds grid points 110 and 130 on both axes: 4 prompts
    img[91:99, 91:99] = (30, 30, 220)       # between grid points 90 and 110: no prompt
    ds = Dataset(write_coco(tmp_path, img, [("red box", (100, 100, 140, 140)),
                                            ("blue box", (91, 91, 99, 99))]))
    res = measure(ds, input_size=512)
    by_name = {o["category"]: o for o in res["objects"]}
    assert by_name["red box"]["prompts"]["thorough"] == 4
    assert by_name["blue box"]["prompts"]["thorough"] == 0
    assert by_name["red box"]["prompts"]["fast"] >= 1
    assert by_name["red box"]["proposed"] == {"fast": True, "thorough": True}
    s = res["summary"]
    assert s["thorough"]["medium"]["covered"] == 1 and s["thorough"]["small"]["covered"] == 0
    assert s["thorough"]["all"]["missed"] == ["scene.png:blue box#2"]
    assert res["photos"][0]["thorough_prompts"] == 256
    # fast mode skips every grid point inside the red box once it is found: at most one prompt lands there
    assert by_name["red box"]["prompts"]["fast"] == 1


def test_region_decoder_answers_with_the_region_under_the_prompt():
    labels = np.full((64, 64), -1, np.int32)
    labels[8:24, 8:24] = 0      # an object
    labels[32:64, :] = 1        # stuff
    dec = RegionDecoder(None, input_size=64, low_size=16)
    dec.set_frame(labels, n_objects=1)
    masks, iou = dec(None, np.array([[12.0, 12.0], [40.0, 50.0], [50.0, 10.0]], np.float32))
    assert masks.shape == (3, 3, 16, 16)
    obj = masks[0, 0] > 0
    assert obj[2:6, 2:6].all() and obj.sum() == 16        # the object's 4x4 low-res cells, nothing else
    assert tuple(iou[0]) == pytest.approx(OBJECT_IOUS)
    assert (masks[1, 0] > 0)[8:, :].all() and tuple(iou[1]) == pytest.approx(STUFF_IOUS)
    assert (masks[2] < 0).all() and (iou[2] == NOTHING_IOU).all()
    assert dec.prompts == [(12.0, 12.0), (40.0, 50.0), (50.0, 10.0)]
    with pytest.raises(ValueError, match="set_frame"):
        RegionDecoder(None, 64, 16)(None, np.zeros((1, 2), np.float32))


def test_photo_regions_give_overlaps_to_the_smaller_object_and_drop_fragments():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 50:] = 200
    img[4:10, 4:10] = (250, 40, 40)  # a 36-pixel background fragment of its own colour
    person = np.zeros((100, 100), bool)
    person[20:80, 20:45] = True
    cap = np.zeros((100, 100), bool)
    cap[20:30, 20:45] = True
    labels, n = photo_regions(img, [person, cap], min_stuff_frac=0.01)
    assert n == 2
    assert (labels[cap] == 1).all() and (labels[person & ~cap] == 0).all()
    assert labels[6, 6] == -1                        # too small to be a region
    assert labels[50, 10] >= 2 and labels[50, 90] >= 2 and labels[50, 10] != labels[50, 90]


def _fast_prompts(labels, n_objects=None):
    seg = OracleSegmenter(512)
    seg.oracle.set_frame(labels, n_objects)
    img = np.full(labels.shape + (3,), 128, np.uint8)  # plain: no saliency points
    out = seg.generate(img, "fast")
    return seg.oracle.prompts, out


def test_fast_mode_refines_only_coarse_cells_that_hold_something():
    # 320x320: coarse 4x4 points at 40, 120, 200, 280; the 8x8 grid at 20, 60, ..., 300
    obj = np.zeros((320, 320), bool)
    obj[50:75, 50:75] = True           # holds the fine point (60, 60), not the coarse point (40, 40)
    nothing = np.full((320, 320), -1, np.int32)
    nothing[obj] = 0
    prompts, _ = _fast_prompts(nothing, 1)
    # every coarse point finds nothing, so no cell is refined and the object gets no prompt
    assert len(prompts) == 16 and points_inside(obj, prompts) == 0
    stuff = nothing.copy()
    stuff[0:160, 0:160][~obj[0:160, 0:160]] = 1   # a table under the object fills the top-left coarse cell
    prompts, out = _fast_prompts(stuff, 1)
    assert points_inside(obj, prompts) == 1
    # 14 coarse points (2 lie on the table found by the first batch) and one fine point: the top-left
    # quarter's other fine points lie on the table, and the other cells found nothing
    assert len(prompts) == 15
    assert any(abs(c.box[0] - 50) <= 2 and abs(c.box[2] - 75) <= 2 for c in out.candidates)


def test_oracle_segmenter_rejects_a_bad_input_size():
    with pytest.raises(ValueError, match="multiple of 64"):
        OracleSegmenter(500)


def test_fast_mode_covers_the_medium_and_large_objects_thorough_covers_on_the_shipped_photos():
    # the measurement docs/eval.md reports; fast mode's prompt placement must not fall behind the grid
    ds = Dataset(shipped_photos()[1])
    s = measure(ds, input_size=1024, thorough_masks=False)["summary"]
    for size in ("medium", "large"):
        fast, thorough = s["fast"][size], s["thorough"][size]
        assert fast["covered_frac"] >= 0.95, (size, fast["missed"])
        assert fast["covered"] >= thorough["covered"], (size, fast["missed"], thorough["missed"])


def test_coverage_cli_writes_the_markdown_section_once(tmp_path):
    img = np.full((320, 320, 3), 128, np.uint8)
    img[100:140, 100:140] = (220, 30, 30)
    ann = write_coco(tmp_path, img, [("red box", (100, 100, 140, 140))])
    md = tmp_path / "eval.md"
    md.write_text("# Eval\n\nintro\n")
    for _ in range(2):
        assert cli.main(["eval", "coverage", "--annotations", str(ann), "--sam-input", "512",
                         "--markdown", str(md), "--json", str(tmp_path / "cov.json")]) == 0
    text = md.read_text()
    assert text.startswith("# Eval\n\nintro\n")
    assert text.count("<!-- eval-coverage:start -->") == 1 and text.count("<!-- eval-coverage:end -->") == 1
    assert "| medium | 1 |" in text and "scene.png" in text
    assert json.loads((tmp_path / "cov.json").read_text())["summary"]["thorough"]["all"]["covered"] == 1
