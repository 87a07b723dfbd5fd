#!/usr/bin/env bash
# Check throughput and latency of two gatehouse binaries in one run: both serve at once (the idle one
# costs nothing), and the load tool alternates rounds between them with the same requests, so the
# machine's drift falls on both alike. For "did this change cost the Check path anything?":
#
#   BEFORE=/path/to/old/gatehouse AFTER=target/release/gatehouse ROUNDS=5 DURATION=10s \
#       bash scripts/bench-compare.sh
#
# AFTER defaults to this tree's release build (built first). With CONSOLE_POLL=1 a client asks the
# AFTER server's console API for the decision list once a second during the rounds, as an open
# console page does. Results: target/bench-compare/summary.txt.
set -euo pipefail

SCRIPT_NAME=bench-compare
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

[[ -n "${BEFORE:-}" && -x "$BEFORE" ]] || die "set BEFORE to the gatehouse binary to compare against"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-5}"
CONCURRENCY="${CONCURRENCY:-32}"
OUT="$ROOT/target/bench-compare"
SECRET="4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa"
BASE_PORT="${BENCH_BASE_PORT:-50780}"

if [[ -z "${AFTER:-}" ]]; then
    say "building gatehouse (release)"
    cargo build --release --quiet --bin gatehouse
    AFTER="$ROOT/target/release/gatehouse"
fi
LOAD="${LOAD:-$ROOT/target/release/examples/load}"
[[ -x "$LOAD" ]] || cargo build --release --quiet --example load

rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

serve() {
    local binary="$1" grpc="$2" http="$3" log="$4"
    env -i PATH="$PATH" GATEHOUSE_API_SECRET="$SECRET" GATEHOUSE_LISTEN="127.0.0.1:$grpc" \
        GATEHOUSE_HTTP_LISTEN="127.0.0.1:$http" GATEHOUSE_LOG=warn "$binary" serve >"$log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$grpc") 2>/dev/null && return 0
        sleep 0.05
    done
    die "$binary does not listen on $grpc (see $log)"
}
serve "$BEFORE" $((BASE_PORT + 1)) $((BASE_PORT + 2)) "$OUT/before.log"
serve "$AFTER" $((BASE_PORT + 3)) $((BASE_PORT + 4)) "$OUT/after.log"

if [[ "${CONSOLE_POLL:-0}" == 1 ]]; then
    (while sleep 1; do
        curl -fsS "http://127.0.0.1:$((BASE_PORT + 4))/console/api/decisions?limit=200" >/dev/null || true
    done) &
    PIDS+=("$!")
fi

"$LOAD" --target "check@127.0.0.1:$((BASE_PORT + 1))" --target "check@127.0.0.1:$((BASE_PORT + 3))" \
    --case 1 --secret "$SECRET" --concurrency "$CONCURRENCY" --connections 4 --rounds "$ROUNDS" \
    --duration "$DURATION" --json >"$OUT/load.json" 2>"$OUT/load.log"

# The load tool keys its JSON by target kind, and both targets are `check`: read its per-round lines,
# which come in target order (before, then after) within each round.
python3 - "$OUT/load.log" <<'PY' | tee "$OUT/summary.txt"
import re, statistics, sys
rounds = [line for line in open(sys.argv[1]) if line.startswith("round ")]
def field(line, name):
    return float(re.search(r"%s\s+([\d.]+)" % name, line).group(1))
def rps(line):
    return float(re.search(r"([\d.]+) req/s", line).group(1))
rows = {}
for name, lines in (("before", rounds[0::2]), ("after", rounds[1::2])):
    rows[name] = [statistics.median(f(l) for l in lines)
                  for f in (rps, lambda l: field(l, "p50"), lambda l: field(l, "p99"))]
    print("%-7s %.0f req/s, p50 %.0f µs, p99 %.0f µs (medians of %d rounds)" % (name, *rows[name], len(lines)))
(b, a) = rows["before"], rows["after"]
print("after / before: throughput %.3f, p50 %.3f, p99 %.3f" % (a[0] / b[0], a[1] / b[1], a[2] / b[2]))
PY
