#!/usr/bin/env bash
# Installs, with apt-get, the system packages the build and the tests need, and only those missing.
# Quiet and quick when everything is already there. Run as root (CI) or with sudo available.
set -euo pipefail

packages=(pkg-config libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libopenblas-dev libdnnl-dev ffmpeg libopenmpi-dev openmpi-bin python3)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
