#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for the tests, independent of any system service.
#   pg.sh start   start it (idempotent), create role kokyaku + database kokyaku_test, print the URL on stdout
#   pg.sh stop    stop it
#   pg.sh url     print the URL
# Port: KOKYAKU_PG_PORT (default 54329). Data: /tmp/kokyaku-pg-<port> (KOKYAKU_PG_DATA overrides), recreated empty
# on every cold start; it lives in /tmp rather than in the checkout because the postgres user may not be allowed
# into the checkout's parent folders (e.g. /root).
set -euo pipefail

port="${KOKYAKU_PG_PORT:-54329}"
data="$(realpath -m "${KOKYAKU_PG_DATA:-/tmp/kokyaku-pg-$port}")"
sock=/tmp
url="postgresql+psycopg://kokyaku:kokyaku@127.0.0.1:$port/kokyaku_test"

say() { printf '\033[1m[pg]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

find_bindir() {
  local d best=""
  # Highest installed major version first (Debian layout), then pg_config, then PATH.
  for d in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V); do
    [[ -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" ]] && best="$d"
  done
  if [[ -z "$best" ]] && command -v pg_config >/dev/null; then
    d="$(pg_config --bindir)"; [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && best="$d"
  fi
  if [[ -z "$best" ]] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    best="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
  fi
  [[ -n "$best" ]] || die "PostgreSQL server binaries not found (run scripts/setup.sh)"
  echo "$best"
}

# postgres refuses to run as root: as root, run the server and its tools as the postgres OS user.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install the postgresql package)"
    # cd /tmp: the caller's directory may be unreadable for postgres (e.g. under /root).
    (cd /tmp && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

running() { [[ -f "$data/PG_VERSION" ]] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

psql_admin() { as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres "$@"; }

start() {
  if running; then
    say "already running on port $port ($data)"
    echo "$url"; return
  fi
  # Another server on this port would be answering instead of ours.
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
    die "port $port is taken by another server; set KOKYAKU_PG_PORT"
  fi
  local major; major="$("$bin/postgres" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
  ((major >= 15)) || die "PostgreSQL $major found in $bin; 15+ is needed"
  # A cold start always begins from an empty cluster, so no state leaks from an earlier run (initdb takes ~1 s).
  if [[ -e "$data" && ! -f "$data/PG_VERSION" && -n "$(ls -A "$data")" ]]; then
    die "$data exists and is not a PostgreSQL data dir; refusing to delete it"
  fi
  rm -rf "$data"; mkdir -p "$data"
  [[ $EUID -eq 0 ]] && chown postgres: "$data"
  chmod 700 "$data"
  say "initdb $data (PostgreSQL $major, $bin)"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  # Durability is worthless for a throwaway test cluster; speed is not.
  as_pg tee -a "$data/postgresql.conf" >/dev/null <<CONF
# --- kokyaku test cluster ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 256MB
max_connections = 200
CONF
  say "starting on port $port"
  if ! as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null; then
    tail -n 30 "$data/server.log" >&2 || true
    die "server did not start"
  fi
  for _ in $(seq 1 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.5
  done
  # pg_trgm goes into template1 so kokyaku_test and every database the tests create later have it; CREATEDB
  # lets fixtures make one database per xdist worker.
  psql_admin -d template1 <<SQL
CREATE EXTENSION pg_trgm;
CREATE ROLE kokyaku LOGIN CREATEDB PASSWORD 'kokyaku';
CREATE DATABASE kokyaku_test OWNER kokyaku;
SQL
  echo "$url"
}

stop() {
  if running; then
    as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    say "stopped (port $port)"
  else
    say "not running (port $port)"
  fi
}

bin="$(find_bindir)"
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
