"""``tinyvlm bench pipeline`` on the known-answer model set (small, no torch).

Checks the report's shape and the work counters, not speed: timing is the
benchmark's job (docs/benchmarks.md), never a test's.
"""

import json

import numpy as np
import pytest

from tinyvlm_ros import cli
from tinyvlm_ros.bench import pipeline
from tinyvlm_ros.testing import models as testmodels
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def known_answer_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ka")
    testmodels.make_known_answer_set(out)
    return out


@pytest.mark.parametrize("workload", ["natural", "realistic"])
def test_report_has_every_key_and_reference_does_more_work(known_answer_set, tmp_path, workload, capsys):
    out = tmp_path / "bench.json"
    rc = cli.main(["bench", "pipeline", "--models", str(known_answer_set), "--frames", "1",
                   "--workload", workload, "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    for mode in ("reference", "fast"):
        r = report[mode]
        for key in ("p50_s", "p95_s", "decoder_calls", "crops"):
            assert r[key] > 0, (mode, key, r)
        assert r["p95_s"] >= r["p50_s"]
        assert r["stages_p50_s"]["encoder"] > 0
    assert report["reference"]["decoder_calls"] > report["fast"]["decoder_calls"]
    assert report["reference"]["decoder_calls"] == 256  # the 16x16 grid
    assert report["requery_p50_s"] > 0 and report["peak_rss_mb"] > 0 and report["peak_rss_mb_process"] > 0
    assert report["models"]["kind"] == "known-answer"
    assert report["workload"]["name"] == workload
    assert "speedup" in capsys.readouterr().out
    if workload == "realistic":
        # The point of the realistic workload: the reference recipe's 20-40 masks per frame.
        lo, hi = report["reference"]["crops_range"]
        assert 20 <= lo and hi <= 40, report["reference"]


def test_region_labels_cover_objects_and_table():
    scene = make_scene(seed=3, n_objects=6)
    labels = pipeline.region_labels(scene, 24, seed=3)
    assert labels.shape == scene.image.shape[:2]
    assert len(np.unique(labels)) == 24
    for i, obj in enumerate(scene.objects):
        assert (labels[obj.mask] == 24 - len(scene.objects) + i).all()


def test_bad_arguments_are_value_errors(known_answer_set, tmp_path):
    with pytest.raises(ValueError, match="frames"):
        pipeline.run_pipeline_benchmark(known_answer_set, frames=0)
    with pytest.raises(ValueError, match="workload"):
        pipeline.run_pipeline_benchmark(known_answer_set, workload="busy")
    with pytest.raises(FileNotFoundError, match="make-test"):
        pipeline.run_pipeline_benchmark(tmp_path / "none")
