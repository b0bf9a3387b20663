#!/usr/bin/env bash
# Run the whole test suite twice: on SQLite (with the browser tests) and on a private PostgreSQL cluster.
# Extra arguments go to pytest in both passes, e.g. `scripts/test.sh tests/analytics -x`.
#   KOKYAKU_KEEP_PG=1        leave the PostgreSQL cluster running afterwards
#   KOKYAKU_TEST_WORKERS=N   pytest-xdist workers (default 2; 0 or 1 runs in one process)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

# The trap is set first so that a start that fails half-way is cleaned up too.
if [[ "${KOKYAKU_KEEP_PG:-0}" != 1 ]]; then
  trap 'bash scripts/pg.sh stop || true' EXIT
fi
pg_url="$(bash scripts/pg.sh start)"

workers="${KOKYAKU_TEST_WORKERS:-2}"
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if ((workers > 1)); then pytest+=(-n "$workers"); fi

header() { printf '\n\033[1;36m==== %s ====\033[0m\n' "$*"; }

header "pass 1/2: SQLite (all tests, browser included)"
rc_sqlite=0
env -u KOKYAKU_TEST_DATABASE_URL "${pytest[@]}" "$@" || rc_sqlite=$?

header "pass 2/2: PostgreSQL $pg_url (all but e2e)"
rc_pg=0
KOKYAKU_TEST_DATABASE_URL="$pg_url" "${pytest[@]}" -m "not e2e" "$@" || rc_pg=$?

header "summary"
status=0
# pytest exits 5 when it ran nothing: a suite that tests nothing must not pass.
if ((rc_sqlite == 5)); then
  echo "SQLite pass: FAILED - pytest collected no tests (empty suite, or the arguments matched nothing)"
  status=1
elif ((rc_sqlite != 0)); then
  echo "SQLite pass: FAILED (pytest exit $rc_sqlite)"; status=1
else
  echo "SQLite pass: ok"
fi
if ((rc_pg == 5 && rc_sqlite == 0)); then
  # Only e2e tests were selected (they run in the SQLite pass), so there was nothing for PostgreSQL.
  echo "PostgreSQL pass: nothing to run - every selected test is marked e2e"
elif ((rc_pg == 5)); then
  echo "PostgreSQL pass: FAILED - pytest collected no tests"; status=1
elif ((rc_pg != 0)); then
  echo "PostgreSQL pass: FAILED (pytest exit $rc_pg)"; status=1
else
  echo "PostgreSQL pass: ok"
fi
exit "$status"
