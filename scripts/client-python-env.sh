#!/usr/bin/env bash
# Installs the Python client (clients/python) and what its tests need into target/client-python-env/venv:
# the versions pinned in clients/python/requirements-test.txt, then the client itself, editable, without
# resolving its dependencies again. The client's tests (clients/python/tests) run with that venv's
# python:
#   bash scripts/client-python-env.sh && GATEHOUSE_BIN=target/release/gatehouse \
#       target/client-python-env/venv/bin/python -m pytest -q clients/python/tests
#
# Idempotent and safe to run from several processes at once: the work happens under a lock, and a stamp
# holding a hash of the inputs makes a rerun with nothing changed return at once. python3 (3.9 or newer)
# and its venv module are installed with apt-get only when missing. Needs PyPI.
set -euo pipefail

SCRIPT_NAME=client-python-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
CLIENT_DIR="$ROOT/clients/python"
ENV_DIR="$ROOT/target/client-python-env"
VENV="$ENV_DIR/venv"
STAMP="$ENV_DIR/stamp"
LOCK="$ENV_DIR/.lock"
REQUIREMENTS="$CLIENT_DIR/requirements-test.txt"
PYPROJECT="$CLIENT_DIR/pyproject.toml"

for input in "$REQUIREMENTS" "$PYPROJECT"; do
    [[ -f "$input" ]] || die "missing $input"
done

command -v flock >/dev/null 2>&1 || apt_install util-linux
command -v sha256sum >/dev/null 2>&1 || apt_install coreutils

mkdir -p "$ENV_DIR"
exec 9>"$LOCK"
flock -w 1200 9 || die "timed out waiting for $LOCK (another install still running?)"

hash_inputs() {
    cat "$REQUIREMENTS" "$PYPROJECT" "$SELF" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        "$VENV/bin/python" -c 'import gatehouse_client, grpc_tools, fastapi, rest_framework, pytest' >/dev/null 2>&1
}

if installed; then
    exit 0
fi
rm -f "$STAMP"

python_can_venv() {
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}
# The client supports 3.9, but the pinned Django needs 3.10 for its tests.
PYTHON="${GATEHOUSE_CLIENT_PYTHON:-python3}"
if ! python_can_venv "$PYTHON"; then
    if python_can_venv /usr/bin/python3; then
        PYTHON=/usr/bin/python3
    else
        apt_install python3 python3-venv
        PYTHON=/usr/bin/python3
        python_can_venv "$PYTHON" || die "$PYTHON (3.10 or newer) cannot create virtualenvs even after installing python3-venv"
    fi
fi

if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    say "creating the virtualenv $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 || die "'$PYTHON -m venv $VENV' failed"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
say "installing the pinned test requirements from $REQUIREMENTS"
"${PIP[@]}" install -r "$REQUIREMENTS" >&2 ||
    die "pip install -r $REQUIREMENTS failed (is PyPI reachable?)"
say "installing clients/python (editable)"
# --no-build-isolation: build with the pinned setuptools already in the venv, not a fresh download.
"${PIP[@]}" install --no-deps --no-build-isolation -e "$CLIENT_DIR" >&2 ||
    die "pip install -e $CLIENT_DIR failed"
"$VENV/bin/python" -c 'import gatehouse_client, gatehouse_client.fastapi, grpc_tools, rest_framework, pytest' >&2 ||
    die "the client or its test requirements do not import after installing"

printf '%s\n' "$WANT" >"$STAMP"
say "ready: $VENV"
