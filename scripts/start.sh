#!/usr/bin/env bash
# Start Kokyaku on SQLite (kokyaku.db in this folder) with demo data and an admin login, at
# http://127.0.0.1:8000. Extra arguments go to `kokyaku serve`, e.g. `scripts/start.sh --port 8080`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh --no-system

k=.venv/bin/kokyaku
"$k" init
"$k" demo --if-empty --customers 2000
"$k" user ensure-admin
exec "$k" serve --host 127.0.0.1 --port 8000 "$@"
