#!/usr/bin/env bash
# gatehouse beside its peers, on this machine, in one run (README "Benchmarks"):
#
#   gRPC, the repo's load tool (examples/load.rs), the same concurrency for every server, rounds
#   alternating target by target so drift hits all alike:
#     check      gatehouse.v1 Check "alice reads feed user:bob" (Feeds preset, HS256 user token)
#     ext-authz  the same request as Envoy's ext_authz CheckRequest
#     cerbos     Cerbos 0.55 CheckResources for the same rule (benches/peers/cerbos), verifying the
#                same kind of token through a local JWKS holding the secret as an `oct` key
#     floor      the same Check bytes to the load tool's echo server (an empty tonic answer)
#   Each server's CPU time per call (from /proc) and resident memory, idle and after the load.
#
#   HTTP through Envoy 1.40 (one worker, answering with a direct response), driven by wrk:
#     alone, with ext_authz to gatehouse, and with its own jwt_authn + RBAC filters
#     (benches/peers/envoy), and gatehouse's CPU per ext_authz call and Envoy's per request.
#
# Settings (environment): DURATION (10s), ROUNDS (3), CONCURRENCY (32), WARMUP (2s).
# Writes target/bench-peers/summary.json and prints a table. Installs what it needs with
# scripts/peers-env.sh and scripts/envoy-env.sh.
set -euo pipefail

SCRIPT_NAME=bench-peers
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-32}"
WARMUP="${WARMUP:-2s}"
OUT="$ROOT/target/bench-peers"
SECRET="4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa"
API_KEY="benchkey"
BASE_PORT="${BENCH_BASE_PORT:-50700}"
GATEHOUSE_PORT=$((BASE_PORT + 1))
ECHO_PORT=$((BASE_PORT + 2))
CERBOS_GRPC_PORT=$((BASE_PORT + 3))
CERBOS_HTTP_PORT=$((BASE_PORT + 4))

bash scripts/peers-env.sh
ENVOY="$(bash scripts/envoy-env.sh)"
NODE_DIR="$ROOT/target/peers-env/node"
say "building gatehouse and the load tool (release)"
cargo build --release --quiet --bin gatehouse
cargo build --release --quiet --example load
LOAD="$ROOT/target/release/examples/load"

rm -rf "$OUT"
mkdir -p "$OUT/rounds"
(cd "$NODE_DIR" && GATEHOUSE_API_SECRET="$SECRET" node encode.mjs "$OUT")

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Replaces ${NAME} in a template with the variable's value.
render() {
    python3 - "$1" "$2" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
out = re.sub(r"\$\{(\w+)\}", lambda m: os.environ[m.group(1)], text)
open(sys.argv[2], "w").write(out)
PY
}

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on port $1 (see $OUT/*.log)"
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

GATEHOUSE_API_SECRET="$SECRET" GATEHOUSE_API_KEY="$API_KEY" GATEHOUSE_LISTEN="127.0.0.1:$GATEHOUSE_PORT" \
    target/release/gatehouse serve >"$OUT/gatehouse.log" 2>&1 &
GATEHOUSE_PID=$!
PIDS+=("$GATEHOUSE_PID")
"$LOAD" --echo-listen "127.0.0.1:$ECHO_PORT" >"$OUT/echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
export CERBOS_GRPC_PORT CERBOS_HTTP_PORT PEERS_DIR="$OUT" CERBOS_POLICIES="$ROOT/benches/peers/cerbos/policies"
render benches/peers/cerbos/config.yaml "$OUT/cerbos.yaml"
# Cerbos logs every request at info; gatehouse logs none, so Cerbos runs at warn.
"$NODE_DIR/cerbos" server --log-level=warn --config="$OUT/cerbos.yaml" >"$OUT/cerbos.log" 2>&1 &
CERBOS_PID=$!
PIDS+=("$CERBOS_PID")
for port in "$GATEHOUSE_PORT" "$ECHO_PORT" "$CERBOS_GRPC_PORT" "$CERBOS_HTTP_PORT"; do wait_port "$port"; done

# Cerbos must allow what gatehouse allows, or the comparison means nothing.
curl -fsS -X POST "http://127.0.0.1:$CERBOS_HTTP_PORT/api/check/resources" -d @"$OUT/check.json" |
    grep -q '"read":"EFFECT_ALLOW"' || die "Cerbos does not allow the benchmark request"

sleep 2
declare -A IDLE
IDLE[gatehouse]="$(rss_kb "$GATEHOUSE_PID")"
IDLE[cerbos]="$(rss_kb "$CERBOS_PID")"
IDLE[floor]="$(rss_kb "$ECHO_PID")"

# One measured round of one target: the load tool's JSON and the server's CPU ticks during it.
grpc_round() {
    local name="$1" target="$2" pid="$3" duration="$4" file="$5"
    local before after
    before="$(cpu_ticks "$pid")"
    "$LOAD" --target "$target" --case 1 --secret "$SECRET" --api-key "$API_KEY" \
        --raw-method /cerbos.svc.v1.CerbosService/CheckResources --raw-body "$OUT/check.bin" \
        --concurrency "$CONCURRENCY" --connections 4 --rounds 1 --warmup 0s --duration "$duration" \
        --json >"$file.json" 2>>"$OUT/load.log"
    after="$(cpu_ticks "$pid")"
    echo "$((after - before))" >"$file.ticks"
    say "$name: $(python3 - "$file.json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
key = [k for k in data if k != "settings" and not k.startswith("ratio")][0]
m = data[key]["median"]
print("%.0f req/s, p50 %.0f µs, p99 %.0f µs" % (m["throughput_rps"], m["p50_us"], m["p99_us"]))
PY
)"
}

GRPC_TARGETS=(
    "check check@127.0.0.1:$GATEHOUSE_PORT $GATEHOUSE_PID"
    "ext-authz ext-authz@127.0.0.1:$GATEHOUSE_PORT $GATEHOUSE_PID"
    "cerbos raw@127.0.0.1:$CERBOS_GRPC_PORT $CERBOS_PID"
    "floor floor@127.0.0.1:$ECHO_PORT $ECHO_PID"
)
for spec in "${GRPC_TARGETS[@]}"; do
    read -r name target pid <<<"$spec"
    grpc_round "warmup $name" "$target" "$pid" "$WARMUP" "$OUT/rounds/warmup-$name"
done
for round in $(seq "$ROUNDS"); do
    for spec in "${GRPC_TARGETS[@]}"; do
        read -r name target pid <<<"$spec"
        grpc_round "round $round $name" "$target" "$pid" "$DURATION" "$OUT/rounds/grpc-$round-$name"
    done
done
declare -A AFTER
AFTER[gatehouse]="$(rss_kb "$GATEHOUSE_PID")"
AFTER[cerbos]="$(rss_kb "$CERBOS_PID")"
AFTER[floor]="$(rss_kb "$ECHO_PID")"

# --- Envoy ------------------------------------------------------------------------------------------------
export GATEHOUSE_PORT JWKS
JWKS="$(cat "$OUT/jwks.json")"
declare -A ENVOY_PORT ENVOY_PID
index=10
for config in alone ext-authz own-filters; do
    export PORT=$((BASE_PORT + index)) ADMIN_PORT=$((BASE_PORT + index + 1))
    ENVOY_PORT[$config]=$PORT
    render "benches/peers/envoy/$config.yaml" "$OUT/envoy-$config.yaml"
    "$ENVOY" -c "$OUT/envoy-$config.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
        >"$OUT/envoy-$config.log" 2>&1 &
    PIDS+=("$!")
    ENVOY_PID[$config]=$!
    index=$((index + 2))
done
for config in alone ext-authz own-filters; do wait_port "${ENVOY_PORT[$config]}"; done
TOKEN="$(cat "$OUT/token")"
URL_PATH="/api/v1.0/feed/user/bob/?api_key=$API_KEY"
for config in ext-authz own-filters; do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $TOKEN" -H "stream-auth-type: jwt" \
        "http://127.0.0.1:${ENVOY_PORT[$config]}$URL_PATH")"
    [[ "$code" == 200 ]] || die "Envoy with $config answers $code for an allowed request"
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "stream-auth-type: jwt" \
        "http://127.0.0.1:${ENVOY_PORT[$config]}$URL_PATH")"
    [[ "$code" == 401 || "$code" == 403 ]] || die "Envoy with $config answers $code without a token"
done

wrk_round() {
    local config="$1" duration="$2" file="$3"
    local before after envoy_before envoy_after
    before="$(cpu_ticks "$GATEHOUSE_PID")"
    envoy_before="$(cpu_ticks "${ENVOY_PID[$config]}")"
    wrk -t1 -c"$CONCURRENCY" -d"$duration" --latency -H "Authorization: $TOKEN" -H "stream-auth-type: jwt" \
        "http://127.0.0.1:${ENVOY_PORT[$config]}$URL_PATH" >"$file.wrk"
    after="$(cpu_ticks "$GATEHOUSE_PID")"
    envoy_after="$(cpu_ticks "${ENVOY_PID[$config]}")"
    echo "$((after - before))" >"$file.ticks"
    echo "$((envoy_after - envoy_before))" >"$file.envoy-ticks"
    say "envoy $config: $(grep -E 'Requests/sec' "$file.wrk" | tr -s ' ')"
}
for config in alone ext-authz own-filters; do
    wrk_round "$config" "$WARMUP" "$OUT/rounds/warmup-envoy-$config"
done
for round in $(seq "$ROUNDS"); do
    for config in alone ext-authz own-filters; do
        wrk_round "$config" "$DURATION" "$OUT/rounds/envoy-$round-$config"
    done
done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" \
    "${IDLE[gatehouse]}" "${AFTER[gatehouse]}" "${IDLE[cerbos]}" "${AFTER[cerbos]}" \
    "${IDLE[floor]}" "${AFTER[floor]}" <<'PY'
import json, re, statistics, sys
out, rounds, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rss = dict(zip(["gatehouse_idle", "gatehouse_after", "cerbos_idle", "cerbos_after", "floor_idle", "floor_after"],
               [int(v) / 1024 for v in sys.argv[4:10]]))
med = statistics.median

def grpc(name):
    rows = []
    for r in range(1, rounds + 1):
        base = f"{out}/rounds/grpc-{r}-{name}"
        data = json.load(open(base + ".json"))
        key = [k for k in data if k != "settings" and not k.startswith("ratio")][0]
        m = data[key]["median"]
        requests = data[key]["rounds"][0]["requests"]
        ticks = int(open(base + ".ticks").read())
        rows.append((m["throughput_rps"], m["p50_us"], m["p99_us"], ticks / tck * 1e6 / max(requests, 1)))
    return {k: med(v) for k, v in zip(["rps", "p50_us", "p99_us", "cpu_us_per_call"], zip(*rows))}

def wrk_latency(text, label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1, "ms": 1e3, "s": 1e6}[unit]

def envoy(config):
    rows = []
    for r in range(1, rounds + 1):
        base = f"{out}/rounds/envoy-{r}-{config}"
        text = open(base + ".wrk").read()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        requests = int(re.search(r"(\d+) requests in", text).group(1))
        ticks = int(open(base + ".ticks").read())
        envoy_ticks = int(open(base + ".envoy-ticks").read())
        per_request = lambda t: t / tck * 1e6 / max(requests, 1)
        rows.append((rps, wrk_latency(text, "50"), wrk_latency(text, "99"), per_request(ticks),
                     per_request(envoy_ticks)))
    names = ["rps", "p50_us", "p99_us", "gatehouse_cpu_us_per_call", "envoy_cpu_us_per_request"]
    return {k: med(v) for k, v in zip(names, zip(*rows))}

summary = {"grpc": {n: grpc(n) for n in ["check", "ext-authz", "cerbos", "floor"]},
           "envoy": {c: envoy(c) for c in ["alone", "ext-authz", "own-filters"]},
           "rss_mb": rss}
g, e = summary["grpc"], summary["envoy"]
summary["ratios"] = {
    "check_over_cerbos_throughput": g["check"]["rps"] / g["cerbos"]["rps"],
    "check_over_cerbos_p99": g["check"]["p99_us"] / g["cerbos"]["p99_us"],
    "check_over_floor_throughput": g["check"]["rps"] / g["floor"]["rps"],
    "check_over_floor_p99": g["check"]["p99_us"] / g["floor"]["p99_us"],
    "ext_authz_cpu_over_floor_cpu": g["ext-authz"]["cpu_us_per_call"] / g["floor"]["cpu_us_per_call"],
    "envoy_ext_authz_over_own_filters_throughput": e["ext-authz"]["rps"] / e["own-filters"]["rps"],
    "envoy_ext_authz_cpu_over_floor_cpu": e["ext-authz"]["gatehouse_cpu_us_per_call"] / g["floor"]["cpu_us_per_call"],
}
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"\nmedians of {rounds} rounds, concurrency as configured, same machine, same run")
print(f"{'gRPC':<12}{'req/s':>10}{'p50 µs':>10}{'p99 µs':>10}{'CPU µs/call':>13}")
for n, v in g.items():
    print(f"{n:<12}{v['rps']:>10.0f}{v['p50_us']:>10.0f}{v['p99_us']:>10.0f}{v['cpu_us_per_call']:>13.1f}")
print(f"\n{'Envoy':<12}{'req/s':>10}{'p50 µs':>10}{'p99 µs':>10}{'gatehouse CPU µs/call':>23}{'Envoy CPU µs/req':>18}")
for n, v in e.items():
    print(f"{n:<12}{v['rps']:>10.0f}{v['p50_us']:>10.0f}{v['p99_us']:>10.0f}{v['gatehouse_cpu_us_per_call']:>23.1f}"
          f"{v['envoy_cpu_us_per_request']:>18.1f}")
print("\nresident memory (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()))
print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["ratios"].items()))
PY
