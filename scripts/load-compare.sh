#!/usr/bin/env bash
# Runs gatehouse as its own process on loopback and loads it with examples/load.rs: ext_authz Check
# against gatehouse.v1 Check, alternating rounds. Extra arguments go to the load tool, e.g.
#   scripts/load-compare.sh --rounds 5 --duration 20s --json
set -euo pipefail
cd "$(dirname "$0")/.."
port="${LOAD_PORT:-50561}"
secret="${GATEHOUSE_API_SECRET:-4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa}"
api_key="${GATEHOUSE_API_KEY:-loadtestkey}"
cargo build --release --quiet
cargo build --release --quiet --example load
log="$(mktemp)"
GATEHOUSE_API_SECRET="$secret" GATEHOUSE_API_KEY="$api_key" GATEHOUSE_LISTEN="127.0.0.1:$port" \
    target/release/gatehouse serve >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 50); do
    grep -q serving "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
target/release/examples/load --addr "127.0.0.1:$port" --secret "$secret" --api-key "$api_key" \
    --rpc both --rounds 3 --duration 10s --concurrency 16 "$@"
