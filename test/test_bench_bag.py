"""make-bag -> offline bag bench, both storages, raw and compressed, plus bad input and streaming.

Real bag files written and read with rosbags; the engine is either the
known-answer ONNX model set (when the detector is built) or a small colour
engine that needs no models (tests of the tooling itself).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from bag_engines import RedBlockEngine, corrupt_copy

from tinyvlm_ros import cli
from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.bag import run_offline
from tinyvlm_ros.bench.make_bag import START_NS, make_bag
from tinyvlm_ros.types import Detection

COMBOS = [("sqlite3", False), ("sqlite3", True), ("mcap", False), ("mcap", True)]
IDS = ["sqlite3-raw", "sqlite3-compressed", "mcap-raw", "mcap-compressed"]
FRAMES = 6


def _tinyvlm(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _read_topic(path: Path, topic: str):
    with bagio.BagReader(path) as r:
        return [(t, r.decode(c, d)) for c, t, d in r.raw([topic])]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """One small generated bag per storage x image kind."""
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage, compressed in COMBOS:
        path = root / f"{storage}-{'c' if compressed else 'r'}"
        make_bag(path, storage=storage, compressed=compressed, frames=FRAMES, rate=10.0,
                 width=160, height=120)
        out[(storage, compressed)] = path
    return out


# ----------------------------------------------------------------------------- types and messages


def test_vision_msgs_come_from_the_msg_files_with_the_real_hash():
    store = bagio.typestore()
    # The hash ROS computes for vision_msgs/Detection2DArray (Jazzy): a mismatch means the
    # definitions here drifted from the ones the build generates the interfaces from.
    assert store.hash_rihs01(bagio.DETECTION2D_ARRAY) == (
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968")
    assert bagio.find_vision_msgs_dir().name == "msg"


def test_msg_dir_env_override(tmp_path, monkeypatch):
    (tmp_path / "Detection2DArray.msg").write_text("std_msgs/Header header\n")
    monkeypatch.setenv(bagio.MSG_DIR_ENV, str(tmp_path))
    assert bagio.find_vision_msgs_dir() == tmp_path
    monkeypatch.setattr(bagio, "_msg_dir_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(FileNotFoundError, match=bagio.MSG_DIR_ENV):
        bagio.find_vision_msgs_dir()


def test_image_round_trips():
    store = bagio.typestore()
    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    hdr = bagio.make_header(store, 5_000_000_123)
    for enc in ("rgb8", "bgr8"):
        msg = bagio.rgb_to_image(store, rgb, hdr, enc)
        back = bagio.image_to_rgb(store.deserialize_cdr(store.serialize_cdr(msg, bagio.IMAGE), bagio.IMAGE))
        assert np.array_equal(back, rgb)
    mono = bagio.image_to_rgb(bagio.rgb_to_image(store, rgb, hdr, "mono8"))
    assert mono.shape == rgb.shape and np.array_equal(mono[..., 0], mono[..., 2])
    png = bagio.compressed_to_rgb(bagio.rgb_to_compressed(store, rgb, hdr, "png"))
    assert np.array_equal(png, rgb)
    jpg = bagio.compressed_to_rgb(bagio.rgb_to_compressed(store, rgb, hdr, "jpeg"))
    assert jpg.shape == rgb.shape
    bad = bagio.rgb_to_compressed(store, rgb, hdr)
    bad.data = bad.data[:20]
    with pytest.raises(ValueError, match="could not decode"):
        bagio.compressed_to_rgb(bad)
    msg = bagio.rgb_to_image(store, rgb, hdr)
    msg.encoding = "bayer_rggb8"
    with pytest.raises(ValueError, match="unsupported encoding"):
        bagio.image_to_rgb(msg)


def test_detections_message_follows_the_contract():
    store = bagio.typestore()
    hdr = bagio.make_header(store, 1_700_000_000_250_000_000, "cam")
    dets = [Detection("red block", 0.8, (10.0, 20.0, 30.0, 60.0)), Detection("red block", 0.4, (0, 0, 4, 4))]
    msg = bagio.detections_to_msg(store, hdr, dets)
    msg = store.deserialize_cdr(store.serialize_cdr(msg, bagio.DETECTION2D_ARRAY), bagio.DETECTION2D_ARRAY)
    assert bagio.stamp_ns(msg.header.stamp) == 1_700_000_000_250_000_000 and msg.header.frame_id == "cam"
    d0 = msg.detections[0]
    assert d0.results[0].hypothesis.class_id == "red block" and d0.results[0].hypothesis.score == 0.8
    box = (d0.bbox.center.position.x, d0.bbox.center.position.y, d0.bbox.size_x, d0.bbox.size_y)
    assert box == (20, 40, 20, 40)
    assert len({d.id for d in msg.detections}) == 2
    assert bagio.msg_to_detections(msg)[0].box_xyxy == (10.0, 20.0, 30.0, 60.0)


# ----------------------------------------------------------------------------- make-bag


@pytest.mark.parametrize("storage,compressed", COMBOS, ids=IDS)
def test_make_bag_cli_writes_images_command_and_truth(tmp_path, capsys, storage, compressed):
    out = tmp_path / "bag"
    argv = ["bench", "make-bag", out, "--storage", storage, "--frames", 4, "--rate", 20, "--size", "96x64"]
    rc, stdout, err = _tinyvlm(argv + (["--compressed"] if compressed else []), capsys)
    assert rc == 0, err
    assert "wrote" in stdout
    assert bagio.bag_storage(out) == storage
    topic = bagio.TOPIC_IMAGE_COMPRESSED if compressed else bagio.TOPIC_IMAGE
    images = _read_topic(out, topic)
    truth = _read_topic(out, bagio.TOPIC_GROUND_TRUTH)
    command = _read_topic(out, bagio.TOPIC_COMMAND)
    assert [t for t, _ in images] == [START_NS + i * 50_000_000 for i in range(4)]
    assert [bagio.stamp_ns(m.header.stamp) for _, m in truth] == [t for t, _ in images]
    assert command[0][1].data == "pick the red block" and command[0][0] < images[0][0]
    for (_, img), (_, gt) in zip(images, truth):
        rgb = bagio.msg_to_rgb(bagio.COMPRESSED_IMAGE if compressed else bagio.IMAGE, img)
        assert rgb.shape == (64, 96, 3)
        labels = [d.label for d in bagio.msg_to_detections(gt)]
        assert labels.count("red block") == 1 and len(labels) == 3


def test_make_bag_refuses_existing_and_bad_args(tmp_path, capsys):
    rc, _, err = _tinyvlm(["bench", "make-bag", tmp_path, "--frames", 2], capsys)
    assert rc == 2 and "exists" in err
    rc, _, err = _tinyvlm(["bench", "make-bag", tmp_path / "b", "--frames", 0], capsys)
    assert rc == 2 and "--frames" in err


# ----------------------------------------------------------------------------- offline bench


@pytest.mark.parametrize("storage,compressed", COMBOS, ids=IDS)
def test_offline_bench_writes_every_result(bags, tmp_path, storage, compressed):
    bag = bags[(storage, compressed)]
    out = tmp_path / "run"
    s = run_offline(bag, out, RedBlockEngine(), command="pick the red block")
    assert s["frames"] == FRAMES and s["processed"] == FRAMES and s["corrupt"] == 0 and s["dropped"] == 0
    assert s["recall"] == 1.0 and s["mean_iou"] > 0.9
    assert s["latency_ms"]["p50"] > 0 and s["throughput_fps"] > 0 and s["peak_rss_mb"] > 0
    assert json.loads((out / "summary.json").read_text())["frames"] == FRAMES
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == FRAMES and all(r["status"] == "ok" for r in rows)
    for name in ("report.md", "latency_over_time.png", "latency_histogram.png", "detections_per_frame.png"):
        assert (out / name).stat().st_size > 0, name
    assert "recall" in (out / "report.md").read_text()
    # the output bag: same storage, every input topic, and the detections stamped like the images
    assert bagio.bag_storage(out / "bag") == storage
    with bagio.BagReader(out / "bag") as r, bagio.BagReader(bag) as src:
        assert set(src.topics) < set(r.topics)
        assert r.count(bagio.TOPIC_DETECTIONS) == FRAMES
        for topic in src.topics:
            assert r.count(topic) == src.count(topic)
    dets = _read_topic(out / "bag", bagio.TOPIC_DETECTIONS)
    stamps = [int(row["stamp_ns"]) for row in rows]
    assert sorted(bagio.stamp_ns(m.header.stamp) for _, m in dets) == sorted(stamps)
    assert all(m.detections[0].results[0].hypothesis.class_id == "red block" for _, m in dets)


def test_offline_bench_cli_takes_the_command_from_the_bag(bags, tmp_path, capsys, monkeypatch):
    # The CLI builds the engine from --models; give it the colour engine through the same seam.
    import tinyvlm_ros.bench.bag_cli as bag_cli

    monkeypatch.setattr(bag_cli, "_make_engine", lambda args: RedBlockEngine())
    rc, stdout, err = _tinyvlm(["bench", "bag", bags[("mcap", True)], "--out", tmp_path / "o"], capsys)
    assert rc == 0, err
    assert "recall 1.000" in stdout and "report:" in stdout
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["command"] == "pick the red block"


# ----------------------------------------------------------------------------- known-answer models


@pytest.fixture(scope="module")
def known_answer_models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return Path(make_known_answer_set(tmp_path_factory.mktemp("ka")))


@pytest.mark.parametrize("storage,compressed", COMBOS, ids=IDS)
def test_known_answer_models_find_the_red_block(bags, known_answer_models, tmp_path, capsys, storage,
                                                compressed):
    out = tmp_path / "run"
    argv = ["bench", "bag", bags[(storage, compressed)], "-c", "pick the red block", "--models",
            known_answer_models, "--out", out]
    rc, stdout, err = _tinyvlm(argv, capsys)
    assert rc == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["processed"] == FRAMES
    assert s["recall"] >= 0.8 and s["mean_iou"] >= 0.7, s
    assert _read_topic(out / "bag", bagio.TOPIC_DETECTIONS)
    # the report and the headline name the model set, kind first
    name = json.loads((known_answer_models / "manifest.json").read_text())["name"]
    assert s["model_set"] == {"name": name, "kind": "known-answer"}
    assert f"with the known-answer model set {name}" in (out / "report.md").read_text().splitlines()[0]
    assert stdout.startswith(f"offline with the known-answer model set {name}:")


def test_recall_on_processed_frames_is_reported_next_to_recall_on_all_frames(tmp_path):
    from tinyvlm_ros.bench.bag_report import render_markdown
    from tinyvlm_ros.bench.bag_results import FrameOutcome, ResultSink

    truth = [Detection("red block", 1.0, (10.0, 10.0, 30.0, 30.0)),
             Detection("blue ball", 1.0, (50.0, 50.0, 60.0, 60.0))]
    sink = ResultSink(tmp_path, "pick the red block")
    for i in range(4):   # every other frame dropped; the answered ones are right
        ok = i % 2 == 0
        sink.add(FrameOutcome(index=i, stamp_ns=i, log_ns=i, status="ok" if ok else "dropped",
                              detections=[truth[0]] if ok else [], latency_s=0.1 if ok else None,
                              truth=truth))
    sink.close()
    s = sink.summary(mode="live", bag=tmp_path / "b", image_topic="/image", wall_s=1.0, cpu_s=0.1,
                     engine={"models": "m", "kind": "real"})
    assert s["recall"] == 0.5 and s["recall_processed"] == 1.0 and s["precision"] == 1.0
    assert s["ground_truth"]["processed_frames"] == 2
    text = render_markdown(s, [])
    assert text.splitlines()[0] == "# Bag replay (live) of b with the real model set m"
    assert "| 0.500 | 1.000 (2 frames) |" in text


def test_latency_histogram_bins_are_round_and_cover_the_frames():
    from tinyvlm_ros.bench.bag_report import latency_bins

    rng = np.random.default_rng(3)
    for lat, width in [(rng.normal(500, 100, 30), 100.0),    # a short live run: a few 100 ms bars
                       (rng.normal(20, 2, 5000), 0.5),        # a long offline run: fine bars
                       (np.full(10, 7.3), 1.0)]:             # every frame alike: one bar
        edges = latency_bins(lat)
        w = np.diff(edges)
        assert np.allclose(w, width), (w[0], width)
        assert np.allclose(edges / width, np.round(edges / width))   # edges on multiples of the width
        assert edges[0] <= lat.min() and lat.max() < edges[-1]
        assert 1 <= len(w) <= 40
    # a far outlier does not squash the others into one bar: at most 40 bars, the last takes the rest
    lat = np.concatenate([rng.normal(20, 2, 1000), [2000.0]])
    edges = latency_bins(lat)
    assert len(edges) - 1 == 40 and np.diff(edges)[0] <= 1.0
    assert (lat < edges[-1]).sum() >= 990


# ----------------------------------------------------------------------------- bad input


def test_missing_topic_lists_the_topics(bags, tmp_path, capsys):
    rc, _, err = _tinyvlm(["bench", "bag", bags[("sqlite3", False)], "--image-topic", "/front/image",
                           "--models", tmp_path, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "no topic '/front/image'" in err and "/camera/image_raw" in err and "/ground_truth" in err


def test_missing_topic_error_names_present_topics(bags, tmp_path):
    with pytest.raises(bagio.BagError) as exc:
        run_offline(bags[("sqlite3", False)], tmp_path / "o", RedBlockEngine(), image_topic="/front/image")
    text = str(exc.value)
    assert "/front/image" in text and "/camera/image_raw" in text and "/ground_truth" in text


def test_bag_without_images_and_unknown_types(tmp_path):
    store = bagio.typestore()
    path = tmp_path / "odd"
    from rosbags.rosbag2 import Writer

    with Writer(path, version=9) as w:
        c = w.add_connection("/weird", "acme_msgs/msg/Blob", msgdef="uint8[] payload",
                             rihs01="RIHS01_" + "0" * 64)
        w.write(c, 1, b"\x00\x01\x00\x00\x00\x00\x00\x00")
        s = w.add_connection("/command", bagio.STRING, typestore=store)
        w.write(s, 2, store.serialize_cdr(store.types[bagio.STRING](data="hi"), bagio.STRING))
    with pytest.raises(bagio.BagError, match="(?s)no sensor_msgs/Image or CompressedImage topic.*acme_msgs"):
        run_offline(path, tmp_path / "o", RedBlockEngine())
    with pytest.raises(bagio.BagError, match="acme_msgs/msg/Blob"):
        run_offline(path, tmp_path / "o", RedBlockEngine(), image_topic="/weird")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_a_clear_error(bags, tmp_path, capsys, storage):
    src = bags[(storage, False)]
    bad = tmp_path / "trunc"
    bad.mkdir()
    for f in src.iterdir():
        data = f.read_bytes()
        if f.suffix in (".mcap", ".db3"):
            data = data[: len(data) // 3]
        (bad / f.name).write_bytes(data)
    rc, _, err = _tinyvlm(["bench", "bag", bad, "--models", tmp_path, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "Traceback" not in err
    with pytest.raises(bagio.BagError, match="truncated or corrupt"):
        run_offline(bad, tmp_path / "o2", RedBlockEngine())


def test_not_a_bag(tmp_path, capsys):
    rc, _, err = _tinyvlm(["bench", "bag", tmp_path / "nothing", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "does not exist" in err


def test_corrupt_compressed_frame_is_skipped_and_counted(bags, tmp_path, capsys):
    bad = tmp_path / "corrupt"
    corrupt_copy(bags[("mcap", True)], bad, corrupt_index=2)
    s = run_offline(bad, tmp_path / "o", RedBlockEngine())
    err = capsys.readouterr().err
    assert s["corrupt"] == 1 and s["processed"] == FRAMES - 1 and s["frames"] == FRAMES
    assert "frame 2" in err and "skipped" in err
    assert s["recall"] == 1.0  # corrupt frames are not scored: there was nothing to see
    with open(tmp_path / "o" / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows].count("corrupt") == 1 and len(rows) == FRAMES


def test_interrupted_run_keeps_its_results(bags, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_offline(bags[("sqlite3", False)], tmp_path / "o", RedBlockEngine(fail_at=3))
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["processed"] == 3
    with open(tmp_path / "o" / "frames.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert len(_read_topic(tmp_path / "o" / "bag", bagio.TOPIC_DETECTIONS)) == 3


def test_max_frames(bags, tmp_path):
    s = run_offline(bags[("mcap", False)], tmp_path / "o", RedBlockEngine(), max_frames=2)
    assert s["frames"] == 2 and s["status"] == "max-frames"


# ----------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("storage,frames", [("mcap", 10_000), ("sqlite3", 2_000)])
def test_long_replay_runs_in_flat_memory(tmp_path, storage, frames):
    bag = make_bag(tmp_path / "long", storage=storage, frames=frames, rate=30.0, width=64, height=48,
                   n_objects=2)
    s = run_offline(bag, tmp_path / "o", RedBlockEngine())
    assert s["processed"] == frames and s["recall"] > 0.95
    with open(tmp_path / "o" / "frames.csv") as f:
        rss = [float(r["rss_mb"]) for r in csv.DictReader(f)]
    assert len(rss) == frames
    # After warm-up the resident size must not grow with the number of frames:
    # 10,000 64x48 frames are ~90 MB of images, so holding them would show.
    warm = rss[frames // 10]
    assert max(rss) - warm < 25.0, (warm, max(rss))


def test_engine_failure_keeps_results_and_surfaces(bags, tmp_path):
    with pytest.raises(RuntimeError):
        run_offline(bags[("mcap", True)], tmp_path / "o", RedBlockEngine(fail_at=2, exc=RuntimeError))
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["status"] == "error" and "RuntimeError" in s["error"] and s["processed"] == 2
    assert len(_read_topic(tmp_path / "o" / "bag", bagio.TOPIC_DETECTIONS)) == 2
