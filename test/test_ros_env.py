"""The environment tools/ros_env makes: quiet colcon, one-line shell setup, a careful venv clean-up."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import SOURCE_DIR, install_prefix

ENV_SH = SOURCE_DIR / "tools" / "ros_env" / "env.sh"
CLEAN_VENV = SOURCE_DIR / "tools" / "ros_env" / "clean_venv.sh"


def _venv() -> Path:
    venv = os.environ.get("TINYVLM_VENV") or os.path.realpath(SOURCE_DIR / ".venv")
    if not (Path(venv) / "local_setup.sh").is_file():
        pytest.skip(f"no venv made by tools/ros_env/setup.sh at {venv} (ROS 2 from apt?)")
    return Path(venv)


def _clean_shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in bash with an environment as bare as a new login's."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    if os.environ.get("TINYVLM_VENV"):
        env["TINYVLM_VENV"] = os.environ["TINYVLM_VENV"]
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env)


def test_colcon_sees_every_ament_prefix_of_the_environment_as_an_install(tmp_path):
    # colcon's own check, the one behind "AMENT_PREFIX_PATH ... doesn't contain any 'local_setup.*' files"
    _venv()
    probe = ("from colcon_ros.prefix_path.ament import AmentPrefixPath\n"
             "paths = []\n"
             "AmentPrefixPath().extend_prefix_path(paths)\n"
             "print('PATHS', len(paths))\n")
    res = _clean_shell(f"source {ENV_SH} && python -c \"{probe}\"", tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr   # colcon logs its warnings to stderr
    assert "AMENT_PREFIX_PATH" not in out and "local_setup" not in out, out
    assert "PATHS 0" not in out


def test_install_setup_bash_alone_sets_up_python_ros_and_the_package(tmp_path):
    venv = _venv()
    setup = install_prefix().parent / "setup.bash"
    res = _clean_shell(f"source {setup} && python -c 'import sys, rclpy, vision_msgs.msg, tinyvlm_ros.srv; "
                       "print(sys.prefix)' && command -v tinyvlm", tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    prefix, exe = res.stdout.split()
    assert os.path.samefile(prefix, venv) and Path(exe).name == "tinyvlm"


def test_the_venv_setup_file_is_posix_and_can_be_sourced_twice(tmp_path):
    venv = _venv()
    res = subprocess.run(["sh", "-c", f'. "{venv}/local_setup.sh" && . "{venv}/local_setup.sh" && '
                          'echo "$PATH" && echo "$AMENT_PREFIX_PATH"'],
                         capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    path, ament = res.stdout.splitlines()
    assert path.split(":").count(f"{venv}/bin") == 1 and ament.split(":").count(str(venv)) == 1


@pytest.fixture
def clone(tmp_path):
    """A directory shaped like a checkout, with the real clean_venv.sh."""
    root = tmp_path / "clone"
    (root / "tools" / "ros_env").mkdir(parents=True)
    shutil.copy(CLEAN_VENV, root / "tools" / "ros_env" / "clean_venv.sh")
    return root


def _fake_venv(path: Path, made_by=None) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").symlink_to(sys.executable)
    if made_by is not None:
        (path / ".tinyvlm-created-by").write_text(f"{made_by}\n")
    return path


def _clean_venv(clone: Path, venv_env=None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    if venv_env:
        env["TINYVLM_VENV"] = str(venv_env)
    return subprocess.run(["bash", str(clone / "tools" / "ros_env" / "clean_venv.sh")], capture_output=True,
                          text=True, timeout=30, env=env)


def test_clean_venv_removes_the_venv_this_clone_made(clone, tmp_path):
    venv = _fake_venv(tmp_path / "cache" / "venv-x", made_by=clone)
    (clone / ".venv").symlink_to(venv)
    res = _clean_venv(clone)
    assert res.returncode == 0, res.stderr
    assert not venv.exists() and not (clone / ".venv").is_symlink()
    assert f"removed {venv}" in res.stdout


@pytest.mark.parametrize("made_by", [None, "/somewhere/else"])
def test_clean_venv_keeps_a_venv_it_did_not_make(clone, tmp_path, made_by):
    shared = _fake_venv(tmp_path / "shared-venv", made_by=made_by)
    (clone / ".venv").symlink_to(shared)
    for given in (None, shared):   # through the .venv link and through TINYVLM_VENV
        res = _clean_venv(clone, given)
        assert res.returncode == 1 and "keeping" in res.stderr and str(clone) in res.stderr
        assert (shared / "bin" / "python").exists()
