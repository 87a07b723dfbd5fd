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
PACKAGE_JSON="$CLIENT_DIR/package.json"
PACKAGE_LOCK="$CLIENT_DIR/package-lock.json"

for input in "$PACKAGE_JSON" "$PACKAGE_LOCK"; do
    [[ -f "$input" ]] || die "missing $input"
done

lock_env "$ENV_DIR"
WANT="$(inputs_hash "$PACKAGE_JSON" "$PACKAGE_LOCK" "$SELF")"
if stamped "$ENV_DIR" "$WANT" && command -v node >/dev/null 2>&1 &&
    [[ -d "$MODULES/@grpc/grpc-js" && -d "$MODULES/@grpc/proto-loader" ]] &&
    [[ -d "$MODULES/graphql" && -d "$MODULES/express" ]]; then
    exit 0
fi
rm -f "$ENV_DIR/stamp"

need_node
say "installing the client's dependencies with npm ci in $CLIENT_DIR"
# npm ci starts from an empty node_modules, so a half-finished earlier install leaves nothing behind.
# No pinned package needs an install script, so none is run; the dev dependencies (express, graphql)
# are the example app's and the tests', and are wanted even under NODE_ENV=production.
npm_ci "$CLIENT_DIR" --include=dev
(cd "$CLIENT_DIR" && node -e "require('@grpc/grpc-js'); require('@grpc/proto-loader'); require('graphql'); require('express'); require('./src')" >&2) ||
    die "the client does not load after installing"

stamp_env "$ENV_DIR" "$WANT"
say "ready: $MODULES"
