"""Start detect_node with a parameters file; launch arguments override only what they are given.

Examples:
    ros2 launch tinyvlm_ros detect.launch.py image:=/camera/color/image_raw command:=/tinyvlm/command
    ros2 launch tinyvlm_ros detect.launch.py model_dir:=~/.cache/tinyvlm_ros/sets/my-set
    ros2 launch tinyvlm_ros detect.launch.py params_file:=my.yaml          # my.yaml's backend: mcu holds
    ros2 launch tinyvlm_ros detect.launch.py backend:=mcu serial_port:=/dev/ttyACM0

``backend``, ``model_dir``, ``serial_port``, ``use_sim_time`` and ``compressed``
default to "" (not given): the value in ``params_file`` (or the node's default)
applies.  Given, they override it.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

#: Launch argument -> how its text becomes the parameter value (only applied when given).
OVERRIDES = {
    "backend": ("backend", str),
    "model_dir": ("model_dir", str),
    "serial_port": ("serial_port", str),
    "use_sim_time": ("use_sim_time", lambda v: v.strip().lower() in ("true", "1", "yes")),
    "compressed": ("image_transport",
                   lambda v: "compressed" if v.strip().lower() in ("true", "1", "yes") else "raw"),
}


def _overrides(context) -> dict:
    """Return the parameters of the launch arguments the user gave (non-empty), converted."""
    out = {}
    for arg, (name, convert) in OVERRIDES.items():
        value = LaunchConfiguration(arg).perform(context)
        if value != "":
            out[name] = convert(value)
    return out


def _node(context):
    image = LaunchConfiguration("image").perform(context)
    parameters = [LaunchConfiguration("params_file").perform(context)]
    given = _overrides(context)
    if given:
        parameters.append(given)   # after the file: these win
    return [Node(
        package="tinyvlm_ros",
        executable="detect_node",
        name="detect_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=parameters,
        # both image topics are remapped; the node subscribes to the one image_transport names
        remappings=[("command", LaunchConfiguration("command")), ("image", image),
                    ("image/compressed", image.rstrip("/") + "/compressed")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("tinyvlm_ros"), "config", "detect.yaml")
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("image", default_value="image",
                              description="camera image topic (<image>/compressed when compressed)"),
        DeclareLaunchArgument("command", default_value="command", description="language command topic"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"),
        DeclareLaunchArgument("backend", default_value="",
                              description="local or mcu (empty: as params_file says)"),
        DeclareLaunchArgument("model_dir", default_value="",
                              description="model set directory (empty: as params_file says)"),
        DeclareLaunchArgument("serial_port", default_value="",
                              description="MCU port or pyserial URL (empty: as params_file says)"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="true: use /clock (empty: as params_file says)"),
        DeclareLaunchArgument("compressed", default_value="",
                              description="true: subscribe to <image>/compressed (CompressedImage); "
                                          "false: raw (empty: as params_file says)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_node)])
