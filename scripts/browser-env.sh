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
STAMP="$ENV_DIR/stamp"
LOCK="$ENV_DIR/.lock"
REQUIREMENTS="$TEST_DIR/requirements.txt"
PACKAGE_JSON="$TEST_DIR/package.json"
PACKAGE_LOCK="$TEST_DIR/package-lock.json"
PROTOBUF_JS="$NODE_DIR/node_modules/protobufjs/dist/protobuf.min.js"

for input in "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done

# Stream's SDKs mint the tokens; that script has its own lock and stamp.
bash "$ROOT/scripts/sdk-env.sh"

command -v flock >/dev/null 2>&1 || apt_install util-linux
command -v sha256sum >/dev/null 2>&1 || apt_install coreutils

mkdir -p "$ENV_DIR"
exec 9>"$LOCK"
flock -w 1200 9 || die "timed out waiting for $LOCK (another install still running?)"

hash_inputs() {
    cat "$REQUIREMENTS" "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"

browser_present() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1 &&
        [[ -f "$PROTOBUF_JS" ]] &&
        browser_present
}

if installed; then
    exit 0
fi
rm -f "$STAMP"

# --- Chromium and its WebDriver, from Debian ----------------------------------------------------------
if ! browser_present; then
    apt_install chromium chromium-driver
fi
browser_present || die "chromium and chromedriver are not on PATH even after installing them"
say "using $(chromium --version 2>/dev/null | head -n1) and $(chromedriver --version 2>/dev/null | head -n1)"

# --- Python: Selenium ---------------------------------------------------------------------------------
python_can_venv() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1
}
PYTHON="${GATEHOUSE_BROWSER_PYTHON:-python3}"
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
say "installing Selenium from $REQUIREMENTS"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (is PyPI reachable?)"
"$VENV/bin/python" -c 'import selenium.webdriver' >&2 || die "Selenium does not import after installing"

# --- Node: protobufjs ---------------------------------------------------------------------------------
command -v npm >/dev/null 2>&1 || apt_install npm
mkdir -p "$NODE_DIR"
cp "$PACKAGE_JSON" "$PACKAGE_LOCK" "$NODE_DIR/"
say "installing protobufjs with npm ci in $NODE_DIR"
(cd "$NODE_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
    die "npm ci in $NODE_DIR failed (is the npm registry reachable?)"
[[ -f "$PROTOBUF_JS" ]] || die "$PROTOBUF_JS is missing after installing protobufjs"

printf '%s\n' "$WANT" >"$STAMP"
say "ready: $VENV, $NODE_DIR and $(command -v chromedriver)"
