#!/usr/bin/env bash
# Installs what scripts/bench-peers.sh measures gatehouse against, at pinned versions, into
# target/peers-env/: the Cerbos server and Cerbos's generated request code (npm, benches/peers/
# package.json and package-lock.json) and Debian's wrk. Envoy comes from scripts/envoy-env.sh.
# Idempotent: a stamp holding a hash of the pinned inputs makes a rerun with nothing changed return at
# once. Needs the npm registry, and apt-get (as root or passwordless sudo) when wrk or node is missing.
set -euo pipefail

SCRIPT_NAME=peers-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/benches/peers"
ENV_DIR="$ROOT/target/peers-env"
NODE_DIR="$ENV_DIR/node"

command -v wrk >/dev/null 2>&1 || apt_install wrk
need_node

lock_env "$ENV_DIR"
want="$(inputs_hash "$PEERS/package.json" "$PEERS/package-lock.json" "$PEERS/encode.mjs" "$0")"
if stamped "$ENV_DIR" "$want" && [[ -x "$NODE_DIR/cerbos" ]]; then
    exit 0
fi
rm -rf "$NODE_DIR"
mkdir -p "$NODE_DIR"
cp "$PEERS/package.json" "$PEERS/package-lock.json" "$PEERS/encode.mjs" "$NODE_DIR/"
say "installing Cerbos and its request code from npm"
npm_ci "$NODE_DIR"
ln -sf node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64 "$NODE_DIR/cerbos"
"$NODE_DIR/cerbos" --version >/dev/null 2>&1 || die "the Cerbos binary does not run"
stamp_env "$ENV_DIR" "$want"
