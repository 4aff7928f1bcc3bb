"""Lint as tests: flake8 and pep257 (the ament linters) and package.xml checks."""

import shutil
import subprocess

import pytest

from ros_helpers import SOURCE_DIR

PY_PATHS = [str(SOURCE_DIR / d) for d in ("tinyvlm_ros", "test", "launch", "tools")
            if (SOURCE_DIR / d).exists()]


def test_flake8():
    from ament_flake8.main import main_with_errors

    rc, errors = main_with_errors(argv=["--config", str(SOURCE_DIR / "test" / "flake8.ini"), *PY_PATHS])
    assert rc == 0, f"{len(errors)} flake8 errors:\n" + "\n".join(map(str, errors[:50]))


def test_pep257():
    from ament_pep257.main import main

    # Google-style sections ("Args:", "Returns:"); missing docstrings on
    # small private-ish helpers are allowed, wrong ones are not.
    ignore = ["D100", "D101", "D102", "D103", "D104", "D105", "D107",
              "D203", "D212", "D213", "D404", "D406", "D407", "D413"]
    rc = main(argv=[str(SOURCE_DIR / "tinyvlm_ros"), str(SOURCE_DIR / "launch"), "--ignore", *ignore])
    assert rc == 0, "pep257 found problems (see output above)"


def test_package_xml_is_a_valid_format3_manifest():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(SOURCE_DIR / "package.xml"))
    assert pkg.package_format == 3
    assert pkg.name == "tinyvlm_ros"
    assert pkg.get_build_type() == "ament_cmake"
    deps = {d.name for d in pkg.build_depends + pkg.exec_depends}
    for needed in ("rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "launch_ros"):
        assert needed in deps, f"package.xml lacks a dependency on {needed}"
    assert "python3-pytest" in {d.name for d in pkg.test_depends}


@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint not installed (tools/ros_env/apt.sh)")
def test_xml_files_are_well_formed():
    files = [SOURCE_DIR / "package.xml", SOURCE_DIR / "tools/ros_env/vision_msgs/package.xml"]
    res = subprocess.run(["xmllint", "--noout", *map(str, files)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
