#!/usr/bin/env bash
# Prepare this checkout: system packages (optional), .venv with the project installed, compiled translations.
# Idempotent and fast when nothing changed.
#   --no-system or KOKYAKU_SKIP_SYSTEM=1: skip PostgreSQL/Chromium (the app on SQLite does not need them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

skip_system="${KOKYAKU_SKIP_SYSTEM:-0}"
for arg in "$@"; do
  case "$arg" in
    --no-system) skip_system=1 ;;
    *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------------
if [[ "$skip_system" != 1 ]]; then
  pkgs=(postgresql postgresql-contrib chromium fonts-ipafont-gothic)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=()
    if [[ $EUID -ne 0 ]]; then
      command -v sudo >/dev/null || { echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
      sudo=(sudo -n env DEBIAN_FRONTEND=noninteractive)  # sudo drops the exported variable
    fi
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for a dpkg lock held by another apt run instead of failing at once.
    apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
    "${sudo[@]}" apt-get "${apt_opts[@]}" update >/dev/null
    "${sudo[@]}" apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
    # Recommends were skipped: prove the browser still starts headless (it needs --no-sandbox as root).
    if [[ " ${missing[*]} " == *" chromium "* ]]; then
      dom="$(timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
             --disable-background-networking --dump-dom about:blank 2>/dev/null || true)"
      [[ "$dom" == *"<body>"* ]] || { echo "setup.sh: chromium was installed but does not start headless" >&2; exit 1; }
    fi
  fi
fi

# --- virtual environment ---------------------------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  py=""
  for cand in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    if [[ -n "$cand" ]] && command -v "$cand" >/dev/null \
       && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      py="$cand"; break
    fi
  done
  [[ -n "$py" ]] || { echo "setup.sh: Python 3.11+ not found (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  say "creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last successful install (the stamp lives in .venv,
# so a recreated venv always installs).
stamp=.venv/.kokyaku-pyproject.sha256
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  say "installing the project and its test dependencies into .venv"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" >"$stamp"
fi

# --- translations ----------------------------------------------------------------------------------
# pybabel exits non-zero when it finds no catalog, so only call it when there is one.
if [[ -d src/kokyaku/locale ]] && find src/kokyaku/locale -name messages.po -print -quit | grep -q .; then
  .venv/bin/pybabel -q compile -d src/kokyaku/locale -D messages
fi

say "ready"
