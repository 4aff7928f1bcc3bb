"""The ROS-free core and the ``tinyvlm`` CLI install with plain pip (setup.py + setup.cfg)."""

import shutil
import subprocess
import sys
import zipfile

from ros_helpers import SOURCE_DIR


def test_pip_builds_a_wheel_with_the_core_and_the_cli(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "setup.cfg", "README.md"):
        shutil.copy(SOURCE_DIR / name, src / name)
    shutil.copytree(SOURCE_DIR / "tinyvlm_ros", src / "tinyvlm_ros",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
           "-w", str(tmp_path / "dist"), str(src)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("tinyvlm_ros-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "tinyvlm = tinyvlm_ros.cli:main" in zf.read(entry).decode()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for module in ("tinyvlm_ros/cli.py", "tinyvlm_ros/command.py", "tinyvlm_ros/engine/detector.py",
                   "tinyvlm_ros/imaging.py", "tinyvlm_ros/ros/detect_node.py", "tinyvlm_ros/eval/cli.py"):
        assert module in names, f"{module} missing from the wheel"
    # the shipped photos travel with a pip install (tinyvlm eval's default data set)
    photos = (SOURCE_DIR / "tinyvlm_ros" / "data" / "photos")
    for f in photos.iterdir():
        assert f"tinyvlm_ros/data/photos/{f.name}" in names, f"{f.name} missing from the wheel"
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert any("onnxruntime" in r for r in requires)
    assert not any("rclpy" in r for r in requires)  # ROS comes from the system or tools/ros_env


def test_core_imports_without_rclpy(tmp_path):
    # A fresh interpreter that cannot see rclpy still imports the plain modules.
    code = ("import sys; sys.modules['rclpy'] = None\n"
            "import tinyvlm_ros.command, tinyvlm_ros.engine.detector, tinyvlm_ros.imaging, tinyvlm_ros.cli\n"
            "import tinyvlm_ros.params, tinyvlm_ros.latest, tinyvlm_ros.depth, tinyvlm_ros.backends\n"
            "import tinyvlm_ros.tracking, tinyvlm_ros.tracking.metrics\n"
            "import tinyvlm_ros.sync, tinyvlm_ros.workers, tinyvlm_ros.health, tinyvlm_ros.command_state\n"
            "import tinyvlm_ros.detection_fields\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_without_rclpy_the_ros_commands_are_absent_and_help_says_why(tmp_path):
    code = ("import sys; sys.modules['rclpy'] = None\n"
            "from tinyvlm_ros.cli import build_parser\n"
            "print(build_parser().format_help())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    commands = res.stdout.split("positional arguments:")[1].split("options:")[0]
    assert "models" in commands and "\n    ros " not in commands
    assert "tinyvlm ros: needs ROS 2's rclpy" in res.stdout


def test_with_rclpy_the_ros_commands_are_there(tmp_path):
    import pytest

    pytest.importorskip("rclpy")
    res = subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "ros", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0 and all(c in res.stdout for c in ("command", "detect", "echo")), res.stderr


def test_the_installed_package_finds_the_firmware_of_the_checkout_it_was_built_from(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("TINYVLM_SOURCE_DIR", "TINYVLM_FIRMWARE_DIR")}
    code = "from tinyvlm_ros.mcu.paths import firmware_dir; print(firmware_dir())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.path.samefile(res.stdout.strip(), SOURCE_DIR / "firmware")
