#!/usr/bin/env bash
# Installs Stream's official SDKs, at the versions pinned in tests/sdk/, into target/sdk-env/:
#   target/sdk-env/venv   a Python virtualenv with tests/sdk/requirements.txt
#   target/sdk-env/node   an `npm ci` of tests/sdk/package.json and package-lock.json
# The SDK compatibility tests (tests/it/sdk_tokens.rs) run it before they mint or verify anything.
#
# Idempotent and safe to run from several processes at once: the work happens under a lock, and a stamp
# holding a hash of the pinned inputs makes a rerun with nothing changed return at once. python3 and
# node/npm are installed with apt-get only when they are missing. Needs PyPI and the npm registry.
set -euo pipefail

SCRIPT_NAME=sdk-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
SDK_DIR="$ROOT/tests/sdk"
ENV_DIR="$ROOT/target/sdk-env"
VENV="$ENV_DIR/venv"
NODE_DIR="$ENV_DIR/node"
STAMP="$ENV_DIR/stamp"
LOCK="$ENV_DIR/.lock"
REQUIREMENTS="$SDK_DIR/requirements.txt"
PACKAGE_JSON="$SDK_DIR/package.json"
PACKAGE_LOCK="$SDK_DIR/package-lock.json"

for input in "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done


command -v flock >/dev/null 2>&1 || apt_install util-linux
command -v sha256sum >/dev/null 2>&1 || apt_install coreutils

mkdir -p "$ENV_DIR"
exec 9>"$LOCK"
flock -w 1200 9 || die "timed out waiting for $LOCK (another install still running?)"

hash_inputs() {
    cat "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/python" -c '' >/dev/null 2>&1 &&
        [[ -d "$NODE_DIR/node_modules/getstream" && -d "$NODE_DIR/node_modules/stream-chat" ]] &&
        command -v node >/dev/null 2>&1
}

if installed; then
    exit 0
fi
rm -f "$STAMP"

# --- Python -----------------------------------------------------------------------------------------------
python_can_venv() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 8) else 1)' >/dev/null 2>&1
}
PYTHON="${GATEHOUSE_SDK_PYTHON:-python3}"
if ! python_can_venv "$PYTHON"; then
    if python_can_venv /usr/bin/python3; then
        PYTHON=/usr/bin/python3
    else
        apt_install python3 python3-venv
        PYTHON=/usr/bin/python3
        python_can_venv "$PYTHON" || die "$PYTHON cannot create virtualenvs even after installing python3-venv"
    fi
fi

if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    say "creating the virtualenv $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || die "'$PYTHON -m venv $VENV' failed"
fi
say "installing the Python SDKs from $REQUIREMENTS"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (is PyPI reachable?)"
"$VENV/bin/python" -c 'import stream, stream_chat, jwt' >&2 ||
    die "the Python SDKs do not import after installing"

# --- Node -------------------------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    apt_install "${missing[@]}"
fi
command -v node >/dev/null 2>&1 || die "node is not on PATH even after installing nodejs"
command -v npm >/dev/null 2>&1 || die "npm is not on PATH even after installing npm"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$NODE_MAJOR" -ge 18 ]] || die "node 18 or newer is needed, found $(node --version)"

mkdir -p "$NODE_DIR"
cp "$PACKAGE_JSON" "$PACKAGE_LOCK" "$NODE_DIR/"
say "installing the JavaScript SDKs with npm ci in $NODE_DIR"
# No pinned package needs an install script, so none is run.
(cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
    die "npm ci in $NODE_DIR failed (is the npm registry reachable?)"
(cd "$NODE_DIR" && node -e "require('getstream'); require('stream-chat'); require('jsonwebtoken')" >&2) ||
    die "the JavaScript SDKs do not load after installing"

printf '%s\n' "$WANT" >"$STAMP"
say "ready: $VENV and $NODE_DIR"
