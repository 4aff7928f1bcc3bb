"""Helpers for tests that run real nodes as separate processes over real DDS.

Nothing here mocks ROS: a test starts an installed executable with
:func:`start_node`, talks to it with a real rclpy node from :func:`ros_node`,
and stops it with :func:`stop_node`, which asserts a clean exit.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

SOURCE_DIR = Path(os.environ.get("TINYVLM_SOURCE_DIR", Path(__file__).resolve().parents[1]))


def install_prefix() -> Path:
    """Install prefix of tinyvlm_ros (colcon's install/tinyvlm_ros), found via the ament index."""
    env = os.environ.get("TINYVLM_INSTALL_PREFIX")
    if env:
        return Path(env)
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        return Path(get_package_prefix("tinyvlm_ros"))
    except PackageNotFoundError:
        fallback = SOURCE_DIR / "install" / "tinyvlm_ros"
        if (fallback / "lib" / "tinyvlm_ros").is_dir():
            return fallback
        raise RuntimeError("tinyvlm_ros is not installed: run `make build` (colcon build) first")


def executable(name: str) -> Path:
    """Path of an installed node executable (what `ros2 run tinyvlm_ros NAME` runs)."""
    path = install_prefix() / "lib" / "tinyvlm_ros" / name
    if not path.exists():
        raise RuntimeError(f"{path} is not installed: run `make build` first")
    return path


def isolated_domain() -> int:
    """Pick a DDS domain for this test process so parallel runs do not hear each other.

    The domain is claimed with an exclusive lock file held for the life of the process,
    so two test processes on this machine (parallel runs, other clones) never share one.
    Child processes inherit it through ROS_DOMAIN_ID.
    """
    dom = os.environ.get("TINYVLM_TEST_DOMAIN")
    if dom is None:
        dom = str(_claim_domain())
        os.environ["TINYVLM_TEST_DOMAIN"] = dom
    os.environ["ROS_DOMAIN_ID"] = dom
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return int(dom)


_domain_lock = None


def _claim_domain() -> int:
    import fcntl

    global _domain_lock
    start = random.Random(os.getpid() ^ time.time_ns()).randint(0, 100)
    for k in range(101):
        dom = 1 + (start + k) % 101      # 1..101: the ids whose DDS ports stay below the ephemeral range
        f = open(Path(tempfile.gettempdir()) / f"tinyvlm-dds-domain-{dom}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _domain_lock = f                 # held (open) until this process exits
        return dom
    return 1 + start % 101               # every id is taken: share one rather than fail


def start_node(name: str, ros_args: Optional[List[str]] = None, log_path: Optional[Path] = None,
               env: Optional[dict] = None) -> subprocess.Popen:
    """Start an installed executable as its own process, its output to ``log_path``."""
    cmd = [str(executable(name))]
    if ros_args:
        cmd += ["--ros-args", *ros_args]
    return start_process(cmd, log_path, env)


def start_process(cmd: List[str], log_path: Optional[Path] = None, env: Optional[dict] = None
                  ) -> subprocess.Popen:
    """Start a command in the test's DDS domain as its own process group, its output to ``log_path``."""
    isolated_domain()
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=proc_env,
                            start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def _ros2cli_importable() -> bool:
    # from a neutral directory: the project root's launch/ folder would shadow the launch package
    probe = "import launch.launch_description, launch_ros.actions, ros2launch"
    res = subprocess.run([sys.executable, "-c", probe], cwd=tempfile.gettempdir(), capture_output=True,
                         timeout=120)
    return res.returncode == 0


def ros2cli_install_script() -> Optional[Path]:
    """Find ../shared/ros2cli/install.sh: $TINYVLM_ROS2CLI_DIR, else beside the project or an ancestor."""
    env = os.environ.get("TINYVLM_ROS2CLI_DIR")
    cands = [Path(env)] if env else []
    cands += [parent / "shared" / "ros2cli" for parent in SOURCE_DIR.resolve().parents]
    return next((c / "install.sh" for c in cands if (c / "install.sh").is_file()), None)


def ros2cli_shell_prefix() -> str:
    """Return the shell text to put before a ``ros2 ...`` command so that it runs.

    With ROS 2 from apt (or after an earlier install) nothing is needed.  In the
    wheel-based venv the ROS 2 command line is installed by
    ``../shared/ros2cli/install.sh`` (idempotent, under a lock so parallel test runs
    do not build it twice), and its workspace is sourced for composition_interfaces.

    Raises:
        RuntimeError: the command line is missing and no install.sh was found, or it failed.
    """
    if _ros2cli_importable() and shutil.which("ros2"):
        try:
            subprocess.run([sys.executable, "-c", "import composition_interfaces.srv"], check=True,
                           cwd=tempfile.gettempdir(), capture_output=True, timeout=60)
            return ""
        except subprocess.CalledProcessError:
            pass
    script = ros2cli_install_script()
    if script is None:
        raise RuntimeError("the ROS 2 command line (launch, ros2cli) is not installed and "
                           "shared/ros2cli/install.sh was not found; set TINYVLM_ROS2CLI_DIR or install "
                           "ROS 2 from apt")
    if not os.environ.get("VIRTUAL_ENV"):
        raise RuntimeError("source tools/ros_env/env.sh first: install.sh installs into $VIRTUAL_ENV")
    lock = Path(os.environ["VIRTUAL_ENV"]) / ".ros2cli-install.lock"
    res = subprocess.run(["flock", str(lock), "bash", str(script)], capture_output=True, text=True,
                         timeout=1200)
    if res.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{res.stderr[-3000:]}")
    setup = Path(res.stdout.strip().splitlines()[-1])
    local = setup.with_name("local_setup.bash")
    return f"source {shlex.quote(str(local))} && "


def stop_node(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT the process (as Ctrl-C would), wait with a timeout, return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            raise AssertionError(f"process {proc.args[0]} ignored SIGINT for {timeout} s")
    return proc.returncode


def node_log(proc: subprocess.Popen) -> str:
    path = getattr(proc, "log_path", None)
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


@contextlib.contextmanager
def ros_node(name: str = "test_client") -> Iterator["object"]:
    """A real rclpy node in this process, in its own context, shut down afterwards."""
    isolated_domain()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(name, context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        yield node
    finally:
        executor.shutdown(timeout_sec=5)
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def spin_until(node, predicate: Callable[[], bool], timeout: float, proc=None) -> bool:
    """Spin ``node`` until ``predicate()`` is true or ``timeout`` seconds pass.

    Fails early if ``proc`` (a node under test) exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"node exited with {proc.returncode}:\n{node_log(proc)[-3000:]}")
        node.executor.spin_once(timeout_sec=0.05)
    return predicate()
