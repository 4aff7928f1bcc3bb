#!/usr/bin/env bash
# Remove the venv that setup.sh made for this clone, and the .venv link to it.
#
# setup.sh records the clone that created a venv in <venv>/.tinyvlm-created-by; a venv without that
# record, or made by another clone (a shared one given through TINYVLM_VENV), is left alone.
#
# Usage: tools/ros_env/clean_venv.sh        (make clean-venv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TINYVLM_VENV:-$(readlink -f "$root/.venv" 2>/dev/null || true)}"

if [[ -z "$venv" || ! -e "$venv" ]]; then
  echo "[clean-venv] no venv for this clone (${venv:-no .venv link}); nothing to remove"
  [[ -L "$root/.venv" ]] && rm -f "$root/.venv"
  exit 0
fi
venv="$(readlink -f "$venv")"
owner="$(cat "$venv/.tinyvlm-created-by" 2>/dev/null || true)"
if [[ "$owner" != "$root" ]]; then
  echo "[clean-venv] keeping $venv: it was ${owner:+made by $owner, }not made by this clone ($root)" >&2
  exit 1
fi
rm -rf "$venv"
[[ -L "$root/.venv" ]] && rm -f "$root/.venv"
echo "[clean-venv] removed $venv"
