"""launch/detect.launch.py starts the installed detect_node with the installed params file.

launch and launch_ros are not installable from PyPI wheels, so the launch file
is read as source here.  The same executable with the same ``--ros-args
--params-file`` runs as a real process in test_detect_node.py.
"""

import ast

from ros_helpers import SOURCE_DIR, install_prefix

LAUNCH = SOURCE_DIR / "launch" / "detect.launch.py"


def _node_keywords():
    tree = ast.parse(LAUNCH.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    assert calls, "no launch_ros Node(...) in the launch file"
    return [{k.arg: k.value for k in c.keywords} for c in calls]


def test_launch_file_names_installed_executable_and_params():
    for kw in _node_keywords():
        assert ast.literal_eval(kw["package"]) == "tinyvlm_ros"
        exe = ast.literal_eval(kw["executable"])
        assert (install_prefix() / "lib" / "tinyvlm_ros" / exe).is_file()
    src = LAUNCH.read_text()
    assert '"config", "detect.yaml"' in src
    assert (install_prefix() / "share" / "tinyvlm_ros" / "config" / "detect.yaml").is_file()
    assert (install_prefix() / "share" / "tinyvlm_ros" / "launch" / "detect.launch.py").is_file()


def test_launch_arguments_documented():
    tree = ast.parse(LAUNCH.read_text())
    names = {ast.literal_eval(n.args[0]) for n in ast.walk(tree)
             if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"}
    assert names == {"namespace", "image", "command", "params_file", "backend", "model_dir", "serial_port",
                     "use_sim_time", "compressed"}
