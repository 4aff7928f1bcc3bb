"""tinyvlm eval run: reports on the shipped photos, scoring, resumption, clear errors."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tinyvlm_ros import cli
from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.eval import commands as cmds
from tinyvlm_ros.eval.dataset import Dataset, shipped_photos
from tinyvlm_ros.eval.metrics import score_command, summarise
from tinyvlm_ros.eval.run import RESULTS, evaluate, read_results
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def known_answer(tmp_path_factory):
    return make_known_answer_set(tmp_path_factory.mktemp("ka_eval"))


@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory):
    # the smallest real architectures: TinyCLIP 8M-16 and MobileSAM at 512 input, random weights
    # in a child process: torch's thread pools stay out of this one (a later fork, e.g. flake8's
    # workers in the same pytest session, could otherwise deadlock)
    out = tmp_path_factory.mktemp("random_eval") / "set"
    subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "models", "make-test", str(out), "--random",
                    "--clip", "8m-16", "--sam-input", "512", "--seed", "3"], check=True, timeout=900,
                   capture_output=True)
    return out


def _report(out):
    return (out / "report.md").read_text(), json.loads((out / "summary.json").read_text())


def test_known_answer_set_on_the_shipped_photos(tmp_path, known_answer):
    out = tmp_path / "ka"
    assert cli.main(["eval", "run", "--models", str(known_answer), "--out", str(out), "--quiet"]) == 0
    text, summary = _report(out)
    first = text.splitlines()[0]
    assert first.startswith("# Evaluation of model set `known-answer") and "kind: known-answer" in first
    assert "not an accuracy result" in first
    assert summary["photos"] == len(Dataset(shipped_photos()[1]).images)
    assert set(summary["commands_by_kind"]) == {"plain", "qualified", "absent"}
    # every generated command is read with the category as its target
    assert summary["parse"]["failures"] == [] and summary["parse"]["rate"] == 1.0
    # the colour/shape models know no cup or coin: nothing found, and nothing found where nothing is
    assert summary["absent"]["false_positive_rate"] == 0.0
    assert summary["work_per_frame"]["decoder_calls"] > 0
    for plot in ("hit_rate_by_category.png", "latency.png", "recall_by_size.png"):
        assert (out / plot).stat().st_size > 1000
    assert len(read_results(out)) == summary["photos"]


def test_tiny_random_set_runs_the_whole_path_on_real_photos(tmp_path, tiny_random):
    out = tmp_path / "rnd"
    assert cli.main(["eval", "run", "--models", str(tiny_random), "--out", str(out), "--quiet",
                     "--photos", "coffee.png", "coins.png", "--max-absent", "1"]) == 0
    text, summary = _report(out)
    assert "kind: random" in text.splitlines()[0] and "RANDOM WEIGHTS" in text.splitlines()[0]
    assert "Decoder: ORACLE" in text
    assert summary["settings"]["workload"] == "oracle"
    # the decoder oracle gives the real masks' workload: masks, crops and CLIP run on every photo
    for row in summary["per_photo"]:
        assert row["decoder_calls"] > 0 and row["masks"] > 0 and row["crops"] == row["masks"]
        assert row["cpu_s"] > 0
    assert summary["latency_s"]["frame_p50"] > 0


def test_the_mcu_engine_runs_through_the_same_evaluation(tmp_path, known_answer):
    from tinyvlm_ros.mcu.emulate import Emulator, build

    build("host")
    out = tmp_path / "mcu"
    with Emulator("host") as emu:
        assert cli.main(["eval", "run", "--backend", "mcu", "--serial-port", emu.url, "--models",
                         str(known_answer), "--photos", "coffee.png", "--max-absent", "1", "--out", str(out),
                         "--quiet", "--mcu-allow-random-model"]) == 0
    text, s = _report(out)
    first = text.splitlines()[0]
    assert "kind: mcu+random" in first and "MCU engine" in first and "RANDOM WEIGHTS" in first
    assert s["settings"]["engine"]["backend"] == "mcu" and s["settings"]["engine"]["state"] == "ok"
    assert s["commands"] == 4 and not s["errors"]  # cup, saucer, spoon and one absent object


def _scene_coco(tmp_path, n=4):
    """Generated table-top scenes as a COCO file: what the known-answer models are built to find."""
    images, anns, cats = [], [], {}
    for i in range(n):
        sc = make_scene(100 + i, n_objects=4)
        cv2.imwrite(str(tmp_path / f"scene{i}.png"), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": f"scene{i}.png", "width": sc.image.shape[1],
                       "height": sc.image.shape[0], "neg_category_ids": []})
        for obj in sc.objects:
            cid = cats.setdefault(obj.label, len(cats) + 1)
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cid, "iscrowd": 0,
                         "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)),
                         "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    present = [{cats[o.label] for o in make_scene(100 + i, n_objects=4).objects} for i in range(n)]
    for img, have in zip(images, present):
        img["neg_category_ids"] = sorted(set(cats.values()) - have)[:2]
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": v, "name": k} for k, v in cats.items()]}
    (tmp_path / "scenes.json").write_text(json.dumps(coco))
    return tmp_path / "scenes.json"


def test_known_answer_set_scores_well_where_it_knows_the_words(tmp_path, known_answer):
    # the metric pipeline end to end on photos whose words the known-answer models do know
    ann = _scene_coco(tmp_path)
    out = tmp_path / "scenes"
    assert cli.main(["eval", "run", "--annotations", str(ann), "--models", str(known_answer),
                     "--out", str(out), "--quiet"]) == 0
    _, s = _report(out)
    assert s["hit_rate"]["plain"] >= 0.8, s["per_category"]
    assert s["precision"] >= 0.7 and s["recall"] >= 0.7
    assert s["absent"]["commands"] > 0 and s["absent"]["false_positive_rate"] <= 0.25


def test_scoring_of_each_command_kind():
    boxes = {1: (0, 0, 10, 10), 2: (50, 50, 60, 60)}
    det = lambda box, score=0.9: {"box": list(box), "score": score}  # noqa: E731
    plain = {"kind": "plain", "targets": [1, 2],
             "detections": [det((1, 1, 10, 10)), det((100, 100, 110, 110), 0.5)]}
    assert score_command(plain, boxes) == {"hit": True, "tp": 1, "fp": 1, "fn": 1, "matched": [1]}
    # a wrong first detection is a miss even when a later one is right
    wrong_first = {**plain, "detections": [det((100, 100, 110, 110)), det((50, 50, 60, 60), 0.5)]}
    assert score_command(wrong_first, boxes)["hit"] is False
    qualified = {"kind": "qualified", "targets": [2], "detections": [det((50, 50, 61, 61))]}
    assert score_command(qualified, boxes) == {"hit": True, "tp": 1, "fp": 0, "fn": 0, "matched": [2]}
    absent = {"kind": "absent", "targets": [], "detections": [det((0, 0, 5, 5))]}
    assert score_command(absent, boxes)["hit"] is False and score_command(absent, boxes)["fp"] == 1
    assert score_command({**absent, "detections": []}, boxes)["hit"] is True
    # unannotated instances may exist: an unmatched detection is not counted against the engine
    assert score_command(plain, boxes, exhaustive=False)["fp"] == 0


class CountingEngine:
    """A real detector that counts the frames it is asked about."""

    name = "counting"

    def __init__(self, det):
        self.det, self.calls = det, 0

    def detect(self, image, command, **kw):
        self.calls += 1
        return self.det.detect(image, command, **kw)

    def describe(self):
        return self.det.describe()


def test_a_rerun_resumes_and_skips_done_photos(tmp_path, known_answer):
    ds = Dataset(shipped_photos()[1])
    ds.images = ds.images[:3]
    commands = {img.file_name: cmds.generate(img, max_absent=1) for img in ds.images}
    settings = {"models": "ka", "kind": "known-answer", "mode": "fast"}
    eng = CountingEngine(Detector.from_dir(known_answer))
    first = evaluate(ds, eng, commands, tmp_path, settings=settings, progress=False)
    n_first = eng.calls
    assert len(first) == 3 and n_first == sum(len(c) for c in commands.values())
    again = evaluate(ds, eng, commands, tmp_path, settings=settings, progress=False)
    assert eng.calls == n_first and [r["image"] for r in again] == [r["image"] for r in first]
    # an interrupted run: the last photo's line was torn; only that photo is redone
    lines = (tmp_path / RESULTS).read_text().splitlines()
    (tmp_path / RESULTS).write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    resumed = evaluate(ds, eng, commands, tmp_path, settings=settings, progress=False)
    assert eng.calls == n_first + len(commands[ds.images[2].file_name])
    assert [r["image"] for r in resumed] == [img.file_name for img in ds.images]
    assert summarise(ds, resumed)["photos"] == 3
    # other settings never mix into the same results
    with pytest.raises(ValueError, match="mode differ.*--restart"):
        evaluate(ds, eng, commands, tmp_path, settings={**settings, "mode": "thorough"}, progress=False)
    evaluate(ds, eng, commands, tmp_path, settings={**settings, "mode": "thorough"}, progress=False,
             restart=True)
    assert eng.calls == n_first * 2 + len(commands[ds.images[2].file_name])


def test_a_broken_annotation_file_is_a_clear_cli_error(tmp_path, capsys, known_answer):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "categories": []}))
    assert cli.main(["eval", "run", "--annotations", str(bad), "--models", str(known_answer),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "tinyvlm: error:" in err and "missing the 'annotations' list" in err and "Traceback" not in err
    assert cli.main(["eval", "coverage", "--annotations", str(tmp_path / "none.json")]) == 2
    assert "none.json not found" in capsys.readouterr().err
