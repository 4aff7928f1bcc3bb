"""libFuzzer + ASan/UBSan on the firmware's frame parser and command dispatcher: a short smoke run."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mcu_helpers import ROOT

FIRMWARE = ROOT / "firmware"


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed (tools/ros_env/apt.sh)")
def test_fuzz_smoke_no_findings(tmp_path):
    build = subprocess.run(["make", "-C", str(FIRMWARE), "fuzz-build"], capture_output=True, text=True,
                           timeout=300)
    if build.returncode != 0 and "libclang_rt" in build.stderr:
        pytest.skip("clang's libFuzzer runtime missing (Debian: libclang-rt-14-dev)")
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run([str(FIRMWARE / "build" / "fuzz" / "tvlm_fuzz_frames"), "-max_total_time=20",
                          "-max_len=9000", "-seed=1", "-print_final_stats=1", str(corpus)],
                         capture_output=True, text=True, timeout=120)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log
    runs = [int(line.rsplit(":", 1)[1]) for line in log.splitlines()
            if "stat::number_of_executed_units" in line]
    assert runs and runs[0] > 10_000, log[-2000:]
