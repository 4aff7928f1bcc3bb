"""``tinyvlm bench pipeline``: report shape and work counters, the stock-recipe peer, the docs section.

Timing is the benchmark's job (docs/benchmarks.md), never a test's: these
check what was counted and that the report renders, on the known-answer set
(no torch) and, for the peer, on a tiny random-weight set (SAM input 512,
TinyCLIP 8M-16) cached under out/ because the real architectures are slow to
export.
"""

import json
import os
from pathlib import Path

import pytest

from tinyvlm_ros import cli
from tinyvlm_ros.bench import pipeline
from tinyvlm_ros.bench.pipeline_report import END, START, update_markdown
from tinyvlm_ros.testing.models import make_known_answer_set


@pytest.fixture(scope="module")
def known_answer_set(tmp_path_factory):
    return make_known_answer_set(tmp_path_factory.mktemp("ka"))


@pytest.fixture(scope="module")
def scenes_report(known_answer_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = cli.main(["bench", "pipeline", "--models", str(known_answer_set), "--frames", "2",
                   "--workload", "scenes", "--json", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


def test_report_counts_the_work_of_each_mode(scenes_report):
    r = scenes_report
    assert r["models"]["kind"] == "known-answer" and r["workload"]["oracle"] is False
    for mode in ("fast", "thorough"):
        m = r[mode]
        assert m["frames"] == 2 and m["p95_s"] >= m["p50_s"] > 0 and m["crops"] > 0
        assert m["stages_p50_s"]["encoder"] > 0
        assert [f["frame"] for f in m["per_frame"]] == r["workload"]["frames"]
        # every prompt starts on a window; the ones whose masks spill over go to the whole grid
        assert m["decoder_window_16"] == m["decoder_calls"] >= m["decoder_full"]
    assert r["thorough"]["decoder_calls"] == 256 > r["fast"]["decoder_calls"]
    assert r["ratios"]["thorough/fast"] > 0 and "peer/fast" not in r["ratios"]
    assert r["requery_p50_s"] > 0 and r["peak_rss_mb"]["fast"] > 0 and r["peak_rss_mb"]["thorough"] > 0


def test_agreement_of_the_window_is_exact_on_the_known_answer_set(scenes_report):
    win = scenes_report["agreement"]["window_vs_whole_grid"]["16"]
    # outputs that fit their window equal the whole grid's; the table's spill over (then re-decoded)
    assert win["mask_iou"]["n"] > 0 and win["mask_iou"]["max"] == 1.0
    rows = scenes_report["agreement"]["runtimes"]["sam_encoder"]
    assert rows[0]["variant"] == "fp32 onnxruntime" and rows[0]["cpu_ms"] > 0


def test_markdown_section_is_rendered_between_markers(scenes_report, tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nintro\n\n{START}\nold numbers\n{END}\n\n## Node benchmark\nkept\n")
    update_markdown(doc, [scenes_report], ["bench.json"], ["make bench"])
    text = doc.read_text()
    assert "old numbers" not in text and "intro" in text and "## Node benchmark\nkept" in text
    section = text.split(START)[1].split(END)[0]
    assert "KNOWN-ANSWER" in section and "| 512 | ours, fast |" in section
    assert f"{scenes_report['fast']['p50_s']:.2f}" in section
    assert "make bench" in section


def test_bad_arguments_are_value_errors(known_answer_set, tmp_path):
    with pytest.raises(ValueError, match="frames"):
        pipeline.run_pipeline_benchmark(known_answer_set, frames=0, workload="scenes")
    with pytest.raises(ValueError, match="workload"):
        pipeline.run_pipeline_benchmark(known_answer_set, workload="busy")
    with pytest.raises(ValueError, match="mode"):
        pipeline.run_pipeline_benchmark(known_answer_set, modes=("slow",), workload="scenes")
    with pytest.raises(ValueError, match="random-weight"):
        pipeline.run_pipeline_benchmark(known_answer_set, workload="scenes", peer=True, frames=1,
                                        rss_subprocess=False, agreement=False)
    with pytest.raises(FileNotFoundError, match="make-test"):
        pipeline.run_pipeline_benchmark(tmp_path / "none")


def _random_set() -> Path:
    """SAM 512 + TinyCLIP 8M-16 with random weights, made once under out/ (export takes a minute)."""
    root = Path(os.environ.get("TINYVLM_SOURCE_DIR", Path(__file__).resolve().parents[1]))
    out = root / "out" / "test-models" / "random-512-8m"
    if not (out / "sam_decoder_window.onnx").is_file() or not (out / "manifest.json").is_file():
        rc = cli.main(["models", "make-test", str(out), "--random", "--clip", "8m-16", "--sam-input", "512"])
        assert rc == 0
    return out


def test_peer_runs_the_stock_recipe_on_the_same_frames(tmp_path, capsys):
    from tinyvlm_ros.models import export

    try:
        export.import_segment_anything()  # with the exporter's torchvision workaround
    except ImportError as exc:
        pytest.skip(f"the stock recipe needs the export extra ({exc})")
    pytest.importorskip("tinyvlm_ros.eval.oracle", reason="the photos workload needs tinyvlm_ros/eval")
    models = _random_set()
    out = tmp_path / "peer.json"
    rc = cli.main(["bench", "pipeline", "--models", str(models), "--frames", "1", "--peer",
                   "--peer-points-per-side", "4", "--no-rss", "--no-agreement", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["models"]["kind"] == "random" and r["workload"]["name"] == "photos" and r["workload"]["oracle"]
    peer = r["peer"]
    assert peer["decoder_calls"] == 16 and peer["masks"] > 0 and peer["crops"] == peer["masks"]
    assert peer["stages_p50_s"]["encoder"] > 0 and peer["stages_p50_s"]["visual"] > 0
    assert "random weights" in peer["recipe"] and "points_per_side=4" in peer["recipe"]
    assert r["fast"]["crops"] > 0  # the photo's annotated regions became masks
    for key in ("peer/fast", "peer/thorough"):
        assert r["ratios"][key] > 0
    printed = capsys.readouterr().out
    assert "RANDOM set" in printed and "ratio     peer/fast" in printed
