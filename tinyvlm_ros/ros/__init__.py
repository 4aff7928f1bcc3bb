"""The ROS 2 layer: nodes that wire topics, services and parameters to the plain modules.

Only this subpackage imports rclpy and ROS message types.
"""
