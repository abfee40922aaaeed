# Shell helpers shared by the test and bench scripts (source it).

# Waits up to 10 s for a "listening on http(s)://127.0.0.1:PORT" line in a log file and prints the URL.
listening_url() {
  for _ in $(seq 1 200); do
    url=$(grep -o 'https\?://127\.0\.0\.1:[0-9]*' "$1" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.05
  done
  echo "no listening line in $1:" >&2; cat "$1" >&2; return 1
}

# Sets $root and $bin (the debug build), building tokenctl and fakellm first if missing.
use_debug_binaries() {
  root=$(pwd)
  bin="$root/.build/debug"
  if [ ! -x "$bin/tokenctl" ] || [ ! -x "$bin/fakellm" ]; then
    swift build --product tokenctl
    swift build --product fakellm
  fi
}

# A throwaway directory ($work) and the background processes started for the script ($pids),
# both cleaned up when the script exits (KEEP_WORK=1 keeps $work, to look into a failure).
start_work_dir() {
  work=$(mktemp -d)
  pids=()
  trap stop_work_dir EXIT
}
stop_work_dir() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}

# Starts FakeLLM on a free port (extra arguments are passed on, e.g. --chunks 8), requiring a
# fresh provider key: sets $fake (its base URL) and $provider_key.
start_fakellm() {
  provider_key="fake-provider-key-$$"
  "$bin/fakellm" --port 0 --api-key "$provider_key" "$@" >"$work/fakellm.log" 2>&1 &
  pids+=($!)
  fake=$(listening_url "$work/fakellm.log")
}
