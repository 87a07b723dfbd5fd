#!/usr/bin/env bash
# Installs what the browser end-to-end test (tests/browser/drive.py) needs, at the versions pinned in
# tests/browser/, into target/browser-env/:
#   Debian's chromium and chromium-driver   the browser and the WebDriver that Selenium starts
#   target/browser-env/venv                 a Python virtualenv with tests/browser/requirements.txt
#   target/browser-env/node                 an `npm ci` of tests/browser/package.json and package-lock.json
#                                           (protobufjs, whose dist/protobuf.min.js the page loads)
# and, through scripts/sdk-env.sh, Stream's JavaScript SDKs in target/sdk-env/node, which mint the
# users' tokens.
#
# Idempotent and safe to run from several processes at once: the work happens under a lock, and a stamp
# holding a hash of the pinned inputs makes a rerun with nothing changed return at once. Needs Debian's
# packages (when chromium is missing), PyPI and the npm registry; nothing else is downloaded: Selenium is
# given the system chromedriver and never fetches a driver or a browser of its own.
set -euo pipefail

SCRIPT_NAME=browser-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
TEST_DIR="$ROOT/tests/browser"
ENV_DIR="$ROOT/target/browser-env"
VENV="$ENV_DIR/venv"
NODE_DIR="$ENV_DIR/node"
REQUIREMENTS="$TEST_DIR/requirements.txt"
PACKAGE_JSON="$TEST_DIR/package.json"
PACKAGE_LOCK="$TEST_DIR/package-lock.json"
PROTOBUF_JS="$NODE_DIR/node_modules/protobufjs/dist/protobuf.min.js"

for input in "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done

# Stream's SDKs mint the tokens; that script has its own lock and stamp.
bash "$ROOT/scripts/sdk-env.sh"

lock_env "$ENV_DIR"
WANT="$(inputs_hash "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF")"
browser_present() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}
if stamped "$ENV_DIR" "$WANT" && browser_present && [[ -f "$PROTOBUF_JS" ]] &&
    "$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1; then
    exit 0
fi
rm -f "$ENV_DIR/stamp"

# --- Chromium and its WebDriver, from Debian ----------------------------------------------------------
browser_present || apt_install chromium chromium-driver
browser_present || die "chromium and chromedriver are not on PATH even after installing them"
say "using $(chromium --version 2>/dev/null | head -n1) and $(chromedriver --version 2>/dev/null | head -n1)"

# --- Python: Selenium ---------------------------------------------------------------------------------
make_venv "$VENV" 9 "${GATEHOUSE_BROWSER_PYTHON:-python3}"
say "installing Selenium from $REQUIREMENTS"
venv_pip "$VENV" -r "$REQUIREMENTS"
"$VENV/bin/python" -c 'import selenium.webdriver' >&2 || die "Selenium does not import after installing"

# --- Node: protobufjs ---------------------------------------------------------------------------------
need_node
mkdir -p "$NODE_DIR"
cp "$PACKAGE_JSON" "$PACKAGE_LOCK" "$NODE_DIR/"
say "installing protobufjs with npm ci in $NODE_DIR"
npm_ci "$NODE_DIR"
[[ -f "$PROTOBUF_JS" ]] || die "$PROTOBUF_JS is missing after installing protobufjs"

stamp_env "$ENV_DIR" "$WANT"
say "ready: $VENV, $NODE_DIR and $(command -v chromedriver)"
