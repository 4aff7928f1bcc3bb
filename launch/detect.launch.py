"""Start detect_node with config/detect.yaml.

Example:
    ros2 launch tinyvlm_ros detect.launch.py image:=/camera/color/image_raw command:=/tinyvlm/command
    ros2 launch tinyvlm_ros detect.launch.py backend:=mcu serial_port:=/dev/ttyACM0
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("tinyvlm_ros"), "config", "detect.yaml")
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("image", default_value="image", description="camera image topic"),
        DeclareLaunchArgument("command", default_value="command", description="language command topic"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="parameters YAML"),
        DeclareLaunchArgument("backend", default_value="local", description="local or mcu"),
        DeclareLaunchArgument("serial_port", default_value="", description="MCU port or pyserial URL"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="subscribe to <image>/compressed (sensor_msgs/CompressedImage)"),
    ]
    overrides = {
        "backend": LaunchConfiguration("backend"),
        "serial_port": LaunchConfiguration("serial_port"),
        "use_sim_time": LaunchConfiguration("use_sim_time"),
    }

    def node(compressed: bool, condition) -> Node:
        image = LaunchConfiguration("image")
        remap = [("command", LaunchConfiguration("command"))]
        remap.append(("image/compressed", [image, "/compressed"]) if compressed else ("image", image))
        return Node(
            package="tinyvlm_ros",
            executable="detect_node",
            name="detect_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"),
                        dict(overrides, image_transport="compressed" if compressed else "raw")],
            remappings=remap,
            output="screen",
            emulate_tty=True,
            condition=condition,
        )

    compressed = LaunchConfiguration("compressed")
    return LaunchDescription(args + [node(False, UnlessCondition(compressed)),
                                     node(True, IfCondition(compressed))])
