#!/usr/bin/env bash
# Installs the system libraries tokenctl builds against, when missing (Debian/Ubuntu).
# Extra packages can be named as arguments (e.g. python3-venv for the SDK tests, prometheus for
# the dashboards test: `make test` passes it). Debian's prometheus package may start a system
# Prometheus service on :9090; the tests never use it, they start their own on a free port.
set -euo pipefail
need=(libcurl4-openssl-dev libsqlite3-dev libmimalloc-dev pkg-config "$@")
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift is not on PATH (install Swift 6 from swift.org)"; exit 1; }
