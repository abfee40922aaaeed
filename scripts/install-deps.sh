#!/usr/bin/env bash
# Installs the system libraries tokenctl builds against, when missing (Debian/Ubuntu).
# Extra packages can be named as arguments (e.g. python3-venv for the SDK tests).
set -euo pipefail
need=(libcurl4-openssl-dev libsqlite3-dev pkg-config "$@")
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift is not on PATH (install Swift 6 from swift.org)"; exit 1; }
