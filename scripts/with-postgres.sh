#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on 127.0.0.1, then stops and deletes it.
# The command sees TOKENCTL_TEST_POSTGRES=postgres://tokenctl@127.0.0.1:PORT/tokenctl (trust auth,
# loopback only), and TOKENCTL_TEST_POSTGRES_CTL, a script that stops or starts that server
# (`$TOKENCTL_TEST_POSTGRES_CTL stop|start`). Installs Debian's postgresql if missing. As root, the server runs as the
# postgres user (PostgreSQL refuses to run as root); otherwise as the calling user.
# If the server cannot start, the command still runs, without the variable, after a loud warning:
# the PostgreSQL tests then skip and say so.
# Usage: scripts/with-postgres.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh postgresql >&2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
data=$(mktemp -d /tmp/tokenctl-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$data"
  as_owner=(runuser -u postgres --)
fi
started=no
stop() {
  [ "$started" = yes ] && "${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap stop EXIT

if [ -n "$bindir" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if "${as_owner[@]}" "$bindir/initdb" -D "$data/db" -U tokenctl -A trust --no-sync -E UTF8 >"$data/initdb.log" 2>&1 \
    && "${as_owner[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 30 start \
         -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" >/dev/null 2>&1 \
    && "$bindir/psql" -h 127.0.0.1 -p "$port" -U tokenctl -d postgres -qc "CREATE DATABASE tokenctl" >/dev/null; then
    started=yes
    data_dir="$data/db"
  fi
fi
if [ "$started" = yes ]; then
  export TOKENCTL_TEST_POSTGRES="postgres://tokenctl@127.0.0.1:$port/tokenctl"
  # `$TOKENCTL_TEST_POSTGRES_CTL stop|start`: an outage test stops and restarts this server.
  cat >"$data/ctl" <<CTL
#!/usr/bin/env bash
set -euo pipefail
case "\$1" in
  stop) ${as_owner[*]} "$bindir/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null ;;
  start) ${as_owner[*]} "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 30 start \\
           -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" >/dev/null ;;
  *) echo "usage: \$0 stop|start" >&2; exit 2 ;;
esac
CTL
  chmod +x "$data/ctl"
  export TOKENCTL_TEST_POSTGRES_CTL="$data/ctl"
  echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $data_dir)" >&2
else
  echo "################################################################################" >&2
  echo "with-postgres: WARNING: PostgreSQL could not start; its tests will SKIP." >&2
  cat "$data"/*.log >&2 2>/dev/null || true
  echo "################################################################################" >&2
fi
"$@"
