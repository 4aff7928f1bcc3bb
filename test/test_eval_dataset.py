"""The shipped photos and their annotations; clear errors for broken annotation files; commands."""

import json
import shutil

import numpy as np
import pytest

from tinyvlm_ros.eval import commands as cmds
from tinyvlm_ros.eval.dataset import Dataset, shipped_photos, size_class


@pytest.fixture(scope="module")
def shipped():
    return Dataset(shipped_photos()[1])


def test_shipped_photos_have_hand_checked_masks_of_every_size(shipped):
    image_dir, ann = shipped_photos()
    assert (image_dir / "README.md").is_file()
    assert len(shipped.images) >= 6
    objects = [o for img in shipped.images for o in img.objects]
    assert len(objects) >= 40
    sizes = {s: sum(o.size == s for o in objects) for s in ("small", "medium", "large")}
    assert all(n >= 5 for n in sizes.values()), sizes
    # several instances of a class: ordinal commands mean something
    assert any(len(img.instances("coin")) >= 10 for img in shipped.images)
    for img in shipped.images:
        rgb = shipped.load(img)
        assert rgb.shape == (img.height, img.width, 3) and rgb.dtype == np.uint8
        for o in img.objects:
            m = shipped.mask(o.ann_id)
            ys, xs = np.nonzero(m)
            # the polygon fills its box and its area is the annotated one
            assert abs(m.sum() - o.area) <= 0.02 * o.area + 2
            assert xs.min() >= o.box[0] - 1 and xs.max() <= o.box[2] and ys.max() <= o.box[3]
        # categories checked absent are really not annotated in the photo
        assert not set(img.absent) & {o.category for o in img.objects}
    # every photo's licence is named in the README beside it
    readme = (image_dir / "README.md").read_text()
    for img in shipped.images:
        assert f"`{img.file_name}`" in readme


def test_size_classes_follow_coco():
    sizes = [size_class(a) for a in (31 ** 2, 32 ** 2, 95 ** 2, 96 ** 2)]
    assert sizes == ["small", "medium", "medium", "large"]


def _copy(tmp_path):
    image_dir, ann = shipped_photos()
    data = json.loads(ann.read_text())
    shutil.copy(image_dir / "coffee.png", tmp_path / "coffee.png")
    data["images"] = [i for i in data["images"] if i["file_name"] == "coffee.png"]
    keep = {i["id"] for i in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    return data


@pytest.mark.parametrize("breakage, match", [
    (lambda d: "{not json", "is not a JSON annotation file"),
    (lambda d: {k: v for k, v in d.items() if k != "annotations"}, "missing the 'annotations' list"),
    (lambda d: {**d, "annotations": [{**d["annotations"][0], "bbox": [1, 2, 0, 5]}]}, "has no area"),
    (lambda d: {**d, "annotations": [{**d["annotations"][0], "bbox": [1, 2,
                                                                      3]}]}, r"\[x, y, width, height\]"),
    (lambda d: {**d, "annotations": [{**d["annotations"][0], "category_id": 999}]}, "category 999"),
    (lambda d: {**d, "annotations": [{**d["annotations"][0], "image_id": 77}]}, "image 77"),
    (lambda d: {**d, "annotations": d["annotations"][:1] * 2}, "appears twice"),
    (lambda d: {**d, "categories": [{"id": 1, "name": " "}]}, "empty name"),
    (lambda d: {**d, "images": [{**d["images"][0], "width": 0}]}, "has size"),
    (lambda d: {**d, "annotations": [{**d["annotations"][0], "segmentation": [[1, 2, 3]]}]}, "polygons"),
])
def test_a_broken_annotation_file_says_what_is_wrong(tmp_path, breakage, match):
    data = breakage(_copy(tmp_path))
    path = tmp_path / "broken.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(ValueError, match=match):
        Dataset(path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        Dataset(tmp_path / "nowhere.json")
    data = _copy(tmp_path)
    (tmp_path / "coffee.png").unlink()
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="coffee.png.*--images"):
        Dataset(tmp_path / "a.json")


def test_an_image_of_another_size_than_annotated_is_refused(tmp_path):
    data = _copy(tmp_path)
    data["images"][0]["width"] = 601
    (tmp_path / "a.json").write_text(json.dumps(data))
    ds = Dataset(tmp_path / "a.json")
    with pytest.raises(ValueError, match="600x400 but the annotations say 601x400"):
        ds.load(ds.images[0])


def test_generated_commands_name_the_right_objects(shipped):
    coins = next(img for img in shipped.images if img.file_name == "coins.png")
    made = cmds.generate(coins)
    plain = [c for c in made if c.kind == "plain"]
    assert len(plain) == 1 and plain[0].category == "coin" and len(plain[0].targets) == 24
    left = next(c for c in made if c.qualifier == "left")
    assert left.text == "take the coin on the left"
    # the leftmost column of coins, and nothing right of it
    boxes = {o.ann_id: o.box for o in coins.objects}
    cx = {a: (b[0] + b[2]) / 2 for a, b in boxes.items()}
    assert min(cx, key=cx.get) in left.targets
    assert max(cx[a] for a in left.targets) < 0.15 * coins.width
    largest = next(c for c in made if c.qualifier == "largest")
    assert max(boxes, key=lambda a: next(o.area for o in coins.objects if o.ann_id == a)) in largest.targets
    absent = [c for c in made if c.kind == "absent"]
    assert {c.category for c in absent} == set(coins.absent) and all(not c.targets for c in absent)
    # one instance: no qualified command
    coffee = next(img for img in shipped.images if img.file_name == "coffee.png")
    assert not [c for c in cmds.generate(coffee) if c.kind == "qualified"]
    assert len([c for c in cmds.generate(coffee, max_absent=2) if c.kind == "absent"]) == 2


def test_a_commands_file_is_checked_against_the_annotations(tmp_path, shipped):
    coffee = next(img for img in shipped.images if img.file_name == "coffee.png")
    cup = coffee.instances("cup")[0].ann_id
    good = {"coffee.png": [{"command": "hand me the espresso cup", "category": "cup"},
                           {"command": "that cup", "category": "cup", "annotation_ids": [cup]},
                           {"command": "pick the cat", "category": "cat"}]}
    (tmp_path / "c.json").write_text(json.dumps(good))
    got = cmds.load_commands(tmp_path / "c.json", shipped)["coffee.png"]
    assert [c.kind for c in got] == ["plain", "qualified", "absent"]
    assert got[0].targets == [cup] and got[1].targets == [cup]
    bad_cases = [({"nope.png": []}, "not in"),
                 ({"coffee.png": [{"command": "x", "category": "unicorn"}]}, "unicorn"),
                 ({"coffee.png": [{"command": "x", "category": "cup", "annotation_ids": [cup + 1]}]},
                  "annotation_ids")]
    for bad, match in bad_cases:
        (tmp_path / "b.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            cmds.load_commands(tmp_path / "b.json", shipped)
