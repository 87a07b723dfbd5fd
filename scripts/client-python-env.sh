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
REQUIREMENTS="$CLIENT_DIR/requirements-test.txt"
PYPROJECT="$CLIENT_DIR/pyproject.toml"

for input in "$REQUIREMENTS" "$PYPROJECT"; do
    [[ -f "$input" ]] || die "missing $input"
done

lock_env "$ENV_DIR"
WANT="$(inputs_hash "$REQUIREMENTS" "$PYPROJECT" "$SELF")"
if stamped "$ENV_DIR" "$WANT" &&
    "$VENV/bin/python" -c 'import gatehouse_client, grpc_tools, fastapi, rest_framework, pytest' >/dev/null 2>&1; then
    exit 0
fi
rm -f "$ENV_DIR/stamp"

# The client supports 3.9, but the pinned Django needs 3.10 for its tests.
make_venv "$VENV" 10 "${GATEHOUSE_CLIENT_PYTHON:-python3}"
say "installing the pinned test requirements from $REQUIREMENTS"
venv_pip "$VENV" -r "$REQUIREMENTS"
say "installing clients/python (editable)"
# --no-build-isolation: build with the pinned setuptools already in the venv, not a fresh download.
venv_pip "$VENV" --no-deps --no-build-isolation -e "$CLIENT_DIR"
"$VENV/bin/python" -c 'import gatehouse_client, gatehouse_client.fastapi, grpc_tools, rest_framework, pytest' >&2 ||
    die "the client or its test requirements do not import after installing"

stamp_env "$ENV_DIR" "$WANT"
say "ready: $VENV"
