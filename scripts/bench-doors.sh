#!/usr/bin/env bash
# What one decision costs through each door of one release server, asked the same question (alice
# reads feed user:bob, allowed):
#   grpc       gatehouse.v1 Check over gRPC (the repo's load tool, 4 HTTP/2 connections)
#   json       POST /v1/check on the HTTP listener with the user's token (wrk, HTTP/1.1 keep-alive)
#   grpc-web   /gatehouse.v1.Gatehouse/Check as gRPC-Web on the HTTP listener (wrk)
# Rounds alternate between the doors; for each, the medians of throughput, p50, p99 and the server's
# CPU time per request (utime+stime over the round). The browser rate limits are off, as a load test
# of one user would otherwise measure the limiter's 429s.
#
#   DURATION=10s ROUNDS=3 CONCURRENCY=32 bash scripts/bench-doors.sh
# Results: target/bench-doors/summary.txt. Needs wrk (installed with apt-get when missing).
set -euo pipefail

SCRIPT_NAME=bench-doors
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-32}"
OUT="$ROOT/target/bench-doors"
SECRET="4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa"
BASE_PORT="${BENCH_BASE_PORT:-50760}"
GRPC_PORT=$((BASE_PORT + 1))
HTTP_PORT=$((BASE_PORT + 2))

command -v wrk >/dev/null 2>&1 || apt_install wrk
say "building gatehouse and the load tool (release)"
cargo build --release --quiet --bin gatehouse
cargo build --release --quiet --example load
GATEHOUSE="$ROOT/target/release/gatehouse"
LOAD="$ROOT/target/release/examples/load"

rm -rf "$OUT"
mkdir -p "$OUT/rounds"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on port $1 (see $OUT/gatehouse.log)"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

env -i PATH="$PATH" GATEHOUSE_API_SECRET="$SECRET" GATEHOUSE_LISTEN="127.0.0.1:$GRPC_PORT" \
    GATEHOUSE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" GATEHOUSE_BROWSER_DOORS=true GATEHOUSE_BROWSER_RATE_PER_USER=0 \
    GATEHOUSE_BROWSER_RATE_PER_ADDRESS=0 GATEHOUSE_LOG=warn \
    "$GATEHOUSE" serve >"$OUT/gatehouse.log" 2>&1 &
PID=$!
PIDS+=("$PID")
wait_port "$GRPC_PORT"
wait_port "$HTTP_PORT"

TOKEN="$(GATEHOUSE_API_SECRET="$SECRET" "$GATEHOUSE" token issue --user alice --ttl 1d 2>/dev/null)" ||
    die "could not mint a token with gatehouse token issue"
export TOKEN

# The same question as JSON and as one gRPC-Web frame (CheckRequest{action: read, resource: {kind:
# feed, id: user:bob}}, encoded by hand: three length-delimited fields).
printf '%s' '{"action":"read","resource":{"kind":"feed","id":"user:bob"}}' >"$OUT/check.json"
python3 - "$OUT/check.grpcweb" <<'PY'
import struct, sys
def field(number, payload):
    return bytes([number << 3 | 2, len(payload)]) + payload
message = field(2, b"read") + field(3, field(1, b"feed") + field(2, b"user:bob"))
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(message)) + message)
PY
cat >"$OUT/post.lua" <<'LUA'
local body_file, content_type = os.getenv("BODY_FILE"), os.getenv("BODY_TYPE")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = content_type
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["X-Grpc-Web"] = "1"
-- Every answer must be the decision, not a refusal: count the others.
local bad = 0
response = function(status, headers, body)
    if status ~= 200 or (headers["grpc-status"] ~= nil and headers["grpc-status"] ~= "0")
        or (content_type == "application/json" and not body:find('"allowed":true', 1, true)) then
        bad = bad + 1
    end
end
done = function() io.stderr:write("unexpected answers: " .. bad .. "\n") end
LUA

# Check each door answers the question as allowed before measuring.
curl -fsS -X POST "http://127.0.0.1:$HTTP_PORT/v1/check" -H "authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' --data-binary @"$OUT/check.json" | grep -q '"allowed":true' ||
    die "the JSON door does not allow the benchmark question"

round() {
    local door="$1" file="$2" before after
    before="$(cpu_ticks "$PID")"
    case "$door" in
    grpc)
        "$LOAD" --target "check@127.0.0.1:$GRPC_PORT" --case 1 --secret "$SECRET" \
            --concurrency "$CONCURRENCY" --connections 4 --rounds 1 --warmup 0s --duration "$DURATION" \
            --json >"$file.json" 2>>"$OUT/load.log"
        ;;
    json | grpc-web)
        local path=/v1/check body="$OUT/check.json" type=application/json
        if [[ "$door" == grpc-web ]]; then
            path=/gatehouse.v1.Gatehouse/Check body="$OUT/check.grpcweb" type=application/grpc-web+proto
        fi
        BODY_FILE="$body" BODY_TYPE="$type" wrk -t1 -c"$CONCURRENCY" -d"$DURATION" --latency \
            -s "$OUT/post.lua" "http://127.0.0.1:$HTTP_PORT$path" >"$file.wrk" 2>"$file.err"
        grep -q "unexpected answers: 0" "$file.err" || die "$door: some answers were not the decision ($file.err)"
        ;;
    esac
    after="$(cpu_ticks "$PID")"
    echo "$((after - before))" >"$file.ticks"
}

say "warming up"
for door in grpc json grpc-web; do DURATION=2s round "$door" "$OUT/rounds/warmup-$door"; done
for r in $(seq "$ROUNDS"); do
    for door in grpc json grpc-web; do
        round "$door" "$OUT/rounds/$r-$door"
        say "round $r: $door done"
    done
done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/summary.txt"
import json, re, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    def pct(label):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    return rps, pct("50"), pct("99"), requests

rows = {}
for door in ["grpc", "json", "grpc-web"]:
    samples = []
    for r in range(1, rounds + 1):
        base = "%s/rounds/%d-%s" % (out, r, door)
        ticks = int(open(base + ".ticks").read())
        if door == "grpc":
            data = json.load(open(base + ".json"))
            key = [k for k in data if k != "settings" and not k.startswith("ratio")][0]
            m = data[key]["median"]
            rps, p50, p99 = m["throughput_rps"], m["p50_us"], m["p99_us"]
            requests = rps * float(data["settings"]["duration_s"])
        else:
            rps, p50, p99, requests = wrk(open(base + ".wrk").read())
        samples.append((rps, p50, p99, ticks / hz / requests * 1e6))
    rows[door] = [statistics.median(s[i] for s in samples) for i in range(4)]

print("door       req/s    p50 µs   p99 µs   server CPU µs/req   (medians of %d rounds)" % rounds)
for door, (rps, p50, p99, cpu) in rows.items():
    print("%-9s %7.0f %8.0f %8.0f %12.1f" % (door, rps, p50, p99, cpu))
base = rows["grpc"][3]
for door in ["json", "grpc-web"]:
    print("%s CPU per request / grpc: %.2f" % (door, rows[door][3] / base))
PY
