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
REQUIREMENTS="$SDK_DIR/requirements.txt"
PACKAGE_JSON="$SDK_DIR/package.json"
PACKAGE_LOCK="$SDK_DIR/package-lock.json"

for input in "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done

lock_env "$ENV_DIR"
WANT="$(inputs_hash "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF")"
if stamped "$ENV_DIR" "$WANT" && command -v node >/dev/null 2>&1 &&
    "$VENV/bin/python" -c '' >/dev/null 2>&1 &&
    [[ -d "$NODE_DIR/node_modules/getstream" && -d "$NODE_DIR/node_modules/stream-chat" ]]; then
    exit 0
fi
rm -f "$ENV_DIR/stamp"

# --- Python -----------------------------------------------------------------------------------------------
make_venv "$VENV" 8 "${GATEHOUSE_SDK_PYTHON:-python3}"
say "installing the Python SDKs from $REQUIREMENTS"
venv_pip "$VENV" -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import stream, stream_chat, jwt' >&2 ||
    die "the Python SDKs do not import after installing"

# --- Node -------------------------------------------------------------------------------------------------
need_node
mkdir -p "$NODE_DIR"
cp "$PACKAGE_JSON" "$PACKAGE_LOCK" "$NODE_DIR/"
say "installing the JavaScript SDKs with npm ci in $NODE_DIR"
# No pinned package needs an install script, so none is run.
npm_ci "$NODE_DIR"
(cd "$NODE_DIR" && node -e "require('getstream'); require('stream-chat'); require('jsonwebtoken')" >&2) ||
    die "the JavaScript SDKs do not load after installing"

stamp_env "$ENV_DIR" "$WANT"
say "ready: $VENV and $NODE_DIR"
