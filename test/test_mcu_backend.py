"""McuEngine and the ``tinyvlm mcu`` CLI against the real host firmware."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tinyvlm_ros.mcu.backend import McuEngine, hash_text_embed
from tinyvlm_ros.mcu.emulate import Emulator, build
from tinyvlm_ros.testing.scenes import make_scene
from tinyvlm_ros.types import DetectionResult


@pytest.fixture(scope="module")
def emu():
    build("host")
    with Emulator("host") as e:
        yield e


def test_engine_detects_and_maps_boxes(emu):
    scene = make_scene(seed=3)
    with McuEngine(emu.url, hash_text_embed, dims=64, score_threshold=-1.0, max_detections=4,
                   allow_random_model=True) as eng:
        res = eng.detect(scene.image, "find the red block")
        assert isinstance(res, DetectionResult)
        assert res.targets == ["red block"]
        # threshold -1: every cell is hot, so the phrase yields one box covering the whole frame
        assert len(res.detections) == 1 and res.failure == ""
        d = res.detections[0]
        assert d.box_xyxy == (0.0, 0.0, 640.0, 480.0) and d.role == "target"
        assert 0.0 <= d.score <= 1.0
        assert res.work["mcu_macs"] > 1_000_000
        # two phrases on the same whole-frame box: one object cannot be both targets
        res = eng.detect(scene.image, "find the red block and the green ball")
        assert res.targets == ["red block", "green ball"] and res.detections == []
        assert res.failure.startswith("every visible green ball is already chosen")
        # a relation's reference phrase is scored too: a new phrase extends the table, known ones keep rows
        res2 = eng.detect(scene.image, "the blue ball next to the red block", score_threshold=0.9)
        assert res2.targets == ["blue ball"]
        assert eng.link.info["table_rows"] == 3
        desc = eng.describe()
        assert desc["backend"] == "mcu" and desc["state"] == "ok" and desc["grid"] == "12x12"


class _Fallback:
    name = "fallback"

    def detect(self, image, command, *, score_threshold=None, max_detections=None):
        return DetectionResult(targets=["x"])

    def describe(self):
        return {"backend": "fallback"}


def test_engine_falls_back_when_device_is_gone(tmp_path):
    tty = str(tmp_path / "tty")
    e = Emulator("host", link_path=tty)
    e.start()
    from tinyvlm_ros.mcu.link import McuLink

    link = McuLink(tty, timeout=0.3, retries=1, reconnects=1, reconnect_delay=0.05)
    eng = McuEngine(link, hash_text_embed, dims=32, fallback=_Fallback(), allow_random_model=True).open()
    img = np.zeros((120, 160, 3), np.uint8)
    eng.detect(img, "red block")
    e.kill()
    res = eng.detect(img, "red block")
    assert res.work.get("mcu_fallback") == 1 and eng.degraded
    assert eng.describe()["state"] == "degraded"
    e.start()
    res = eng.detect(img, "red block")
    assert "mcu_fallback" not in res.work and not eng.degraded
    e.stop()
    eng.close()


def test_cli_info_and_detect(emu):
    def run(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "mcu", *args], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    info = json.loads(run("info", "--port", emu.url))
    assert info["grid_w"] == 12 and "stats" in info
    assert "round trip" in run("ping", "--port", emu.url, "--count", "3")
    assert "4 rows" in run("load-table", "--port", emu.url, "--dims", "32", "--phrase", "a", "--phrase", "b",
                           "--phrase", "c", "--phrase", "d")
    out = json.loads(run("detect", "--port", emu.url, "--command", "pick the red block", "--threshold", "-1",
                         "--allow-random-model"))
    assert out["targets"] == ["red block"] and len(out["detections"]) == 1
