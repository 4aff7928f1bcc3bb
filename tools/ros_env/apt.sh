#!/usr/bin/env bash
# Debian packages the firmware, QEMU and lint tests need.  Idempotent.
set -euo pipefail
pkgs=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm libxml2-utils clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[apt] all present: ${pkgs[*]}"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "[apt] error: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "[apt] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
