"""launch/detect.launch.py through the real ``ros2 launch``: a params file's values hold, given arguments win.

The wheel-based environment has no ROS 2 command line; the upstream one is
installed into the venv by ../shared/ros2cli/install.sh (idempotent) when it is
missing (see ros_helpers.ros2cli_shell_prefix).  With ROS 2 from apt it is
already there.
"""

import shlex
import socket
import subprocess

import pytest

from ros_helpers import (install_prefix, node_log, ros2cli_install_script, ros2cli_shell_prefix, ros_node,
                         spin_until, start_process, stop_node)

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402

from tinyvlm_ros.msg import DetectorStatus  # noqa: E402
from tinyvlm_ros.srv import Detect  # noqa: E402

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
ARGS = ("namespace", "image", "command", "params_file", "backend", "model_dir", "serial_port", "use_sim_time",
        "compressed")


@pytest.fixture(scope="module")
def ros2():
    try:
        return ros2cli_shell_prefix()
    except RuntimeError as exc:
        if ros2cli_install_script() is None:
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return make_known_answer_set(tmp_path_factory.mktemp("models") / "known")


def _launch(prefix, args, log):
    line = "exec ros2 launch tinyvlm_ros detect.launch.py " + " ".join(shlex.quote(a) for a in args)
    return start_process(["bash", "-c", prefix + line], log)


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launch_arguments_are_declared_and_installed(ros2):
    res = subprocess.run(["bash", "-c", ros2 + "ros2 launch tinyvlm_ros detect.launch.py --show-args"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    shown = {line.strip().strip("'").rstrip(":").strip("'") for line in res.stdout.splitlines()
             if line.startswith("    '")}
    assert shown == set(ARGS), res.stdout
    assert (install_prefix() / "share" / "tinyvlm_ros" / "config" / "detect.yaml").is_file()


def test_params_file_backend_holds_and_a_given_argument_overrides_it(ros2, models, tmp_path):
    port = _closed_port()
    params = tmp_path / "mcu.yaml"
    params.write_text("/**:\n  ros__parameters:\n    backend: mcu\n"
                      f"    serial_port: \"socket://127.0.0.1:{port}\"\n    model_dir: \"{models}\"\n"
                      "    mcu_allow_random_model: true\n    diagnostics_period_s: 0.2\n")
    # the same file twice: as it is (backend mcu, an MCU that does not answer) and with backend:=local
    arm = _launch(ros2, [f"params_file:={params}", "namespace:=arm"], tmp_path / "arm.log")
    cam2 = _launch(ros2, [f"params_file:={params}", "namespace:=cam2", "backend:=local",
                          "image:=/cam2/rgb", "compressed:=true"], tmp_path / "cam2.log")
    try:
        with ros_node() as n:
            status = {"arm": [], "cam2": []}
            for ns, seen in status.items():
                n.create_subscription(DetectorStatus, f"/{ns}/detect_node/status", seen.append, LATCHED)
            diag = {}
            n.create_subscription(DiagnosticArray, "/diagnostics",
                                  lambda m: diag.update({s.name: s for s in m.status}), 10)

            def last(ns, pred):
                return bool(status[ns]) and pred(status[ns][-1])

            failed = lambda s: s.state == "unconfigured" and s.last_error  # noqa: E731
            assert spin_until(n, lambda: last("arm", failed), 60, arm), node_log(arm)[-3000:]
            st = status["arm"][-1]
            assert st.backend == "mcu" and f"127.0.0.1:{port}" in st.last_error and not st.ready
            assert spin_until(n, lambda: last("cam2", lambda s: s.state == "active"), 60, cam2), \
                node_log(cam2)[-3000:]
            st = status["cam2"][-1]
            assert st.backend == "local" and st.ready
            # the file's model_dir holds too
            assert {kv.key: kv.value for kv in st.models}["model_dir"] == str(models)
            # compressed:=true subscribes to <image>/compressed
            assert spin_until(n, lambda: n.count_subscribers("/cam2/rgb/compressed") == 1, 10, cam2)
            assert n.count_subscribers("/cam2/rgb") == 0

            # each namespaced node reports under its fully qualified name
            names = ("/arm/detect_node: detector", "/cam2/detect_node: detector")
            assert spin_until(n, lambda: all(k in diag for k in names), 20, arm), sorted(diag)
            assert diag[names[0]].level == DiagnosticStatus.ERROR
            assert diag[names[0]].message.startswith("configure failed: MCU at socket://127.0.0.1")
            assert diag[names[1]].level == DiagnosticStatus.OK

            # the unconfigured node's service answers at once, with its state and the reason
            cli = n.create_client(Detect, "/arm/detect_node/detect")
            assert cli.wait_for_service(timeout_sec=20)
            fut = cli.call_async(Detect.Request(command="pick the red block"))
            assert spin_until(n, fut.done, 10, arm)
            res = fut.result()
            assert not res.success and "unconfigured" in res.message and "does not answer" in res.message
    finally:
        codes = [stop_node(p, timeout=20) for p in (arm, cam2)]
    assert codes == [0, 0], node_log(arm)[-2000:] + node_log(cam2)[-2000:]
