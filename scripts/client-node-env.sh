#!/usr/bin/env bash
# Installs the Node.js client's dependencies, at the versions pinned in clients/node/package-lock.json,
# into clients/node/node_modules, for its tests:
#   bash scripts/client-node-env.sh && GATEHOUSE_BIN=/path/to/gatehouse node --test clients/node/test/
#
# Idempotent and safe to run from several processes at once: the work happens under a lock, and a stamp
# holding a hash of the pinned inputs makes a rerun with nothing changed return at once. node/npm are
# installed with apt-get only when they are missing. Needs the npm registry the first time.
set -euo pipefail

SCRIPT_NAME=client-node-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
CLIENT_DIR="$ROOT/clients/node"
MODULES="$CLIENT_DIR/node_modules"
# The lock and the stamp live under target/ with the other environments; the modules stay beside the
# package so that Node resolves them from the package's own files without NODE_PATH.
ENV_DIR="$ROOT/target/client-node-env"
STAMP="$ENV_DIR/stamp"
LOCK="$ENV_DIR/.lock"
PACKAGE_JSON="$CLIENT_DIR/package.json"
PACKAGE_LOCK="$CLIENT_DIR/package-lock.json"

for input in "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done

command -v flock >/dev/null 2>&1 || apt_install util-linux
command -v sha256sum >/dev/null 2>&1 || apt_install coreutils

mkdir -p "$ENV_DIR"
exec 9>"$LOCK"
flock -w 1200 9 || die "timed out waiting for $LOCK (another install still running?)"

hash_inputs() {
    cat "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF" | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"

installed() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
        [[ -d "$MODULES/@grpc/grpc-js" && -d "$MODULES/@grpc/proto-loader" ]] &&
        [[ -d "$MODULES/graphql" && -d "$MODULES/express" ]] &&
        command -v node >/dev/null 2>&1
}

if installed; then
    exit 0
fi
rm -f "$STAMP"

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

say "installing the client's dependencies with npm ci in $CLIENT_DIR"
# npm ci starts from an empty node_modules, so a half-finished earlier install leaves nothing behind.
# No pinned package needs an install script, so none is run; the dev dependencies (express, graphql)
# are the example app's and the tests', and are wanted even under NODE_ENV=production.
(cd "$CLIENT_DIR" && npm ci --include=dev --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
    die "npm ci in $CLIENT_DIR failed (is the npm registry reachable?)"
(cd "$CLIENT_DIR" && node -e "require('@grpc/grpc-js'); require('@grpc/proto-loader'); require('graphql'); require('express'); require('./src')" >&2) ||
    die "the client does not load after installing"

printf '%s\n' "$WANT" >"$STAMP"
say "ready: $MODULES"
