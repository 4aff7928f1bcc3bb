"""Plain-pip install of the ROS-free core and the ``tinyvlm`` CLI.

Inside a ROS 2 workspace the package is built by colcon through CMakeLists.txt
(ament_cmake, for the generated interfaces); this file serves ``pip install .``.
"""

from setuptools import setup

setup()
