# Source this file (bash) to use the ROS 2 environment that setup.sh made:
#   source tools/ros_env/env.sh
# It activates the venv, sets what the ROS wheels and CMake need, and sources
# the vision_msgs overlay.  With ROS 2 from apt, source /opt/ros/jazzy/setup.bash
# instead.
_tv_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_tv_root="$(cd "$_tv_here/../.." && pwd)"
_tv_venv="${TINYVLM_VENV:-$(readlink -f "$_tv_root/.venv" 2>/dev/null)}"
if [[ ! -x "$_tv_venv/bin/python" ]]; then
  echo "tinyvlm env: no venv at $_tv_venv; run tools/ros_env/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV="$_tv_venv"
case ":$PATH:" in *":$_tv_venv/bin:"*) ;; *) export PATH="$_tv_venv/bin:$PATH" ;; esac
_tv_site="$("$_tv_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# The wheels' bootstrapper re-executes Python with LD_LIBRARY_PATH set unless
# told it is done; set the same path here once so every process starts right.
_tv_libs="$_tv_venv/lib"
for _d in "$_tv_site"/ros_*.libs; do [[ -d "$_d" ]] && _tv_libs="$_tv_libs:$_d"; done
export LD_LIBRARY_PATH="$_tv_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export AMENT_PREFIX_PATH="$_tv_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_tv_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export ROS_DISTRO=jazzy
export ROS_VERSION=2
export ROS_PYTHON_VERSION=3
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Discovery stays on this machine unless the user says otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
if [[ "${1:-}" != "--no-overlay" && -f "$_tv_venv/ros/install/setup.bash" ]]; then
  # shellcheck source=/dev/null
  source "$_tv_venv/ros/install/setup.bash"
fi
unset _tv_here _tv_root _tv_venv _tv_site _tv_libs _d
