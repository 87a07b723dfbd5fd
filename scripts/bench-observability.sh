#!/usr/bin/env bash
# What observability costs: gatehouse.v1 Check throughput, latency and server CPU per request on three
# servers running side by side on loopback:
#   off      no metrics, no decision log, no OpenTelemetry (GATEHOUSE_METRICS=false, ring 0)
#   on       metrics, the decision log (ring and a JSON-lines file), OpenTelemetry spans for every
#            request and metrics exported over OTLP/gRPC to examples/otlp_sink.rs on the same machine
#   sampled  as `on`, with the standard parent-based 1% trace sampler (OTEL_TRACES_SAMPLER): a span
#            is still started for every request and joins a caller's sampled trace; 1% of the others
#            are exported
# Rounds alternate the setups, each round starting with the next one in turn, so drift on a shared
# machine and one setup's leftovers hit all alike; prints per-round
# figures, medians, the ratios of the medians to `off`, and the median of each round's ratio to the
# `off` round of the same round. CPU per request is the server process's user+system time
# over the round divided by the requests answered (the load tool and the sink are not counted).
#   scripts/bench-observability.sh [ROUNDS] [DURATION]      e.g. 5 10s
#   SETUPS="off sampled" scripts/bench-observability.sh     only some of the servers (off is needed)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
duration="${2:-10s}"
read -r -a setups <<<"${SETUPS:-off on sampled}"
secret="${GATEHOUSE_API_SECRET:-4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa}"
key=benchkey
sink_port=50570
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet
cargo build --release --quiet --example load --example otlp_sink

target/release/examples/otlp_sink "127.0.0.1:$sink_port" 2>"$work/sink.log" &
pids+=($!)
for _ in $(seq 50); do
    grep -q listening "$work/sink.log" && break
    sleep 0.1
done
grep -q listening "$work/sink.log" || { echo "the OTLP sink did not start:" >&2; cat "$work/sink.log" >&2; exit 1; }
common=(GATEHOUSE_API_SECRET="$secret" GATEHOUSE_API_KEY="$key")
otel=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_METRIC_EXPORT_INTERVAL=5000)
declare -A port pid
port[off]=50571
port[on]=50572
port[sampled]=50573
start() {
    local setup=$1
    shift
    env "${common[@]}" GATEHOUSE_LISTEN="127.0.0.1:${port[$setup]}" "$@" \
        target/release/gatehouse serve >"$work/$setup.log" 2>&1 &
    pid[$setup]=$!
    pids+=("${pid[$setup]}")
}
for setup in "${setups[@]}"; do
    case $setup in
        off) start off GATEHOUSE_METRICS=false GATEHOUSE_DECISION_LOG_RING=0 ;;
        on) start on "${otel[@]}" GATEHOUSE_DECISION_LOG_FILE="$work/on.jsonl" ;;
        sampled) start sampled "${otel[@]}" GATEHOUSE_DECISION_LOG_FILE="$work/sampled.jsonl" \
            OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 ;;
        *) echo "unknown setup $setup" >&2; exit 2 ;;
    esac
done
for setup in "${setups[@]}"; do
    for _ in $(seq 100); do
        grep -q serving "$work/$setup.log" && break
        sleep 0.1
    done
    grep -q serving "$work/$setup.log" || { cat "$work/$setup.log" >&2; exit 1; }
done

# user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq "$rounds"); do
    # Each round starts with the next setup in turn: a setup's leftovers (spans still being exported
    # and decoded) then weigh on every other setup equally often.
    count=${#setups[@]}
    order=()
    for i in $(seq 0 $((count - 1))); do order+=("${setups[$(((round + i) % count))]}"); done
    for setup in "${order[@]}"; do
        # Let the previous server's exporters and log writer finish before measuring this one.
        sleep 1
        before=$(cpu_ticks "${pid[$setup]}")
        target/release/examples/load --addr "127.0.0.1:${port[$setup]}" --secret "$secret" \
            --api-key "$key" --rpc check --rounds 1 --duration "$duration" --warmup 10ms --json \
            2>/dev/null >"$work/$setup-$round.json"
        after=$(cpu_ticks "${pid[$setup]}")
        echo "$((after - before))" >"$work/$setup-$round.cpu"
    done
done

python3 - "$work" "$rounds" "$(getconf CLK_TCK)" "${setups[@]}" <<'PY'
import json, statistics, sys
work, rounds, tick = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
setups = tuple(sys.argv[4:])
rows = {s: [] for s in setups}
for r in range(1, rounds + 1):
    for s in setups:
        with open(f"{work}/{s}-{r}.json") as f:
            data = json.load(f)["check"]
        m, run = data["median"], data["rounds"][0]
        with open(f"{work}/{s}-{r}.cpu") as f:
            ticks = int(f.read())
        m["cpu_us_per_request"] = ticks / tick * 1e6 / max(run["requests"], 1)
        rows[s].append(m)
        print(f"round {r} {s:>7}: {m['throughput_rps']:8.0f} req/s  p50 {m['p50_us']:7.1f} µs  "
              f"p99 {m['p99_us']:8.1f} µs  server CPU {m['cpu_us_per_request']:6.1f} µs/req")
keys = ("throughput_rps", "p50_us", "p99_us", "cpu_us_per_request")
med = {s: {k: statistics.median(x[k] for x in rows[s]) for k in keys} for s in setups}
for s in setups:
    m = med[s]
    print(f"median  {s:>7}: {m['throughput_rps']:8.0f} req/s  p50 {m['p50_us']:7.1f} µs  "
          f"p99 {m['p99_us']:8.1f} µs  server CPU {m['cpu_us_per_request']:6.1f} µs/req")
for s in setups[1:]:
    a, b = med[s], med["off"]
    print(f"{s}/off, ratio of medians: throughput {a['throughput_rps']/b['throughput_rps']:.3f}  "
          f"p50 {a['p50_us']/b['p50_us']:.3f}  p99 {a['p99_us']/b['p99_us']:.3f}  "
          f"server CPU {a['cpu_us_per_request']/b['cpu_us_per_request']:.3f}")
# The machine's speed drifts between rounds more than the setups differ; a setup's round against the
# `off` round of the same round (run within seconds of it) cancels most of that drift.
for s in setups[1:]:
    ratios = {k: sorted(x[k] / o[k] for x, o in zip(rows[s], rows["off"])) for k in keys}
    def spread(k):
        r = ratios[k]
        q = statistics.quantiles(r, n=4) if len(r) > 1 else [r[0], r[0], r[0]]
        return f"{statistics.median(r):.3f} [{q[0]:.3f}-{q[2]:.3f}]"
    print(f"{s}/off, median of paired rounds [quartiles]: throughput {spread('throughput_rps')}  "
          f"p99 {spread('p99_us')}  server CPU {spread('cpu_us_per_request')}")
PY
for setup in "${setups[@]}"; do
    [[ -f "$work/$setup.jsonl" ]] && echo "$setup: $(wc -l <"$work/$setup.jsonl") decision log entries in the current file"
done
echo "$(tail -1 "$work/sink.log")"
