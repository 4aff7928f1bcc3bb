# Source this file (bash) to use the ROS 2 environment that setup.sh made:
#   source tools/ros_env/env.sh
# It sources the venv's local_setup.sh (written by setup.sh: venv, library paths, ROS variables), then
# the overlays built into the venv: vision_msgs, and the ROS 2 command line when `make ros2cli` added
# it.  After `make build`, `source install/setup.bash` alone does the same (colcon chains the venv).
# With ROS 2 from apt, source /opt/ros/jazzy/setup.bash instead.
_tv_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_tv_root="$(cd "$_tv_here/../.." && pwd)"
_tv_venv="${TINYVLM_VENV:-$(readlink -f "$_tv_root/.venv" 2>/dev/null)}"
if [[ ! -x "$_tv_venv/bin/python" || ! -f "$_tv_venv/local_setup.sh" ]]; then
  echo "tinyvlm env: no environment at ${_tv_venv:-$_tv_root/.venv}; run tools/ros_env/setup.sh (make setup) first" >&2
  unset _tv_here _tv_root _tv_venv
  return 1 2>/dev/null || exit 1
fi
# shellcheck source=/dev/null
. "$_tv_venv/local_setup.sh"
if [[ "${1:-}" != "--no-overlay" ]]; then
  for _tv_overlay in "$_tv_venv/ros/install" "$_tv_venv/ros2cli-ws/install"; do
    # local_setup: this prefix only, never the prefixes that happened to be sourced when it was built
    # shellcheck source=/dev/null
    if [[ -f "$_tv_overlay/local_setup.bash" ]]; then source "$_tv_overlay/local_setup.bash"; fi
  done
fi
unset _tv_here _tv_root _tv_venv _tv_overlay
