#!/usr/bin/env bash
# Disk-full test (issue: durability): the ledger on a small tmpfs that fills up while tokenctl
# serves; checks that it fails closed, loses nothing accepted, and recovers when space returns.
# Needs root (it mounts a tmpfs), as the README's set-up commands do.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
use_debug_binaries
start_work_dir
disk="$work/disk"
mkdir -p "$disk"
mount -t tmpfs -o size=2m tmpfs "$disk" || { echo "FAIL cannot mount a tmpfs (the disk-full test needs root)"; exit 1; }
trap 'stop_work_dir_with_disk' EXIT
stop_work_dir_with_disk() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount "$disk" 2>/dev/null || true
  rm -rf "$work"
}

start_fakellm
mkdir -p "$work/policies"
cp policies/prices.yaml "$work/policies/"
cat >"$work/policies/providers.yaml" <<YAML
providers:
  openai: { dialect: openai, base_url: "$fake/v1", api_key_env: DISK_TEST_PROVIDER_KEY }
models:
  - { match: "gpt-*", provider: openai }
YAML
db="$disk/ledger.sqlite"
key=$("$bin/tokenctl" keys create --user disk-full --db "$db" | tail -1)
DISK_TEST_PROVIDER_KEY="$provider_key" "$bin/tokenctl" serve --policies "$work/policies" --db "$db" --port 0 \
  >"$work/tokenctl.log" 2>&1 &
serve_pid=$!
pids+=($serve_pid)
proxy=$(listening_url "$work/tokenctl.log")
# Leave about 200 KB free: room for a few hundred rows, then the disk is full.
free_kb=$(df -k --output=avail "$disk" | tail -1)
dd if=/dev/zero of="$disk/filler" bs=1k count=$(( free_kb > 200 ? free_kb - 200 : 1 )) status=none 2>/dev/null || true
python3 Tests/diskfull/disk_full_test.py --port "${proxy##*:}" --key "$key" --db "$db" --filler "$disk/filler" \
  || { echo "--- tokenctl log (tail)"; tail -20 "$work/tokenctl.log"; exit 1; }
