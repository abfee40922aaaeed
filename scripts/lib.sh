# Shell helpers shared by the test and bench scripts (source it).

# Waits up to 10 s for a "listening on http://127.0.0.1:PORT" line in a log file and prints the URL.
listening_url() {
  for _ in $(seq 1 200); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$1" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.05
  done
  echo "no listening line in $1:" >&2; cat "$1" >&2; return 1
}
