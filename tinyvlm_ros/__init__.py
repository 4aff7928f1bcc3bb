"""tinyvlm_ros: open-vocabulary object detection for ROS 2 robots.

The package is split so that everything except :mod:`tinyvlm_ros.ros` imports
without rclpy: command parsing, the segment-then-match engine, model tools,
the microcontroller link and the benchmarks are plain modules.
"""

__version__ = "0.1.0"
