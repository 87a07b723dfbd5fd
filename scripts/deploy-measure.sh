#!/usr/bin/env bash
# Measures what README's "Sidecar or standalone" reports: the latency a request pays for its decision,
# and the memory each part of the sidecar pod holds. Three set-ups of the chart's own Envoy configuration
# (helm template), loaded in alternating rounds by wrk with a Stream user token:
#
# The app is the tests' stand-in (tests/deploy/recorder.js on Node.js).
#
#   no-authz     Envoy -> app, the ext_authz filter removed: the floor
#   sidecar      Envoy -> gatehouse on 127.0.0.1 (sidecar mode) -> app
#   standalone   Envoy -> gatehouse in another network namespace over a veth pair (a shared decision
#                point on another host, without a physical network: a real node-to-node hop adds its
#                round trip on top) -> app
#
#   scripts/deploy-measure.sh [ROUNDS] [SECONDS]      (default 3 rounds of 10 s each)
#
# Each round loads each set-up with one connection (latency, CPUs mostly idle) and with 16 (throughput,
# both cores busy). Prints, per set-up and load, the median over rounds of wrk's median latency and of
# requests/s, and the resident
# memory (VmRSS) of gatehouse and Envoy idle and after the load. Needs root (network namespaces), wrk
# (installed from Debian if missing), and scripts/deploy-env.sh's Envoy and helm.
set -euo pipefail

SCRIPT_NAME=deploy-measure
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-3}"
SECONDS_PER_ROUND="${2:-10}"
[[ "$(id -u)" -eq 0 ]] || die "run as root (network namespaces)"
command -v wrk >/dev/null 2>&1 || apt_install wrk
eval "$(bash "$ROOT/scripts/deploy-env.sh")"
PY="$(dirname "$KUBERNETES_VALIDATE")/python"

(cd "$ROOT" && cargo build --release --locked --quiet --bin gatehouse) || die "cargo build --release failed"
command -v node >/dev/null 2>&1 || die "node is missing: run scripts/sdk-env.sh"
GATEHOUSE="$ROOT/target/release/gatehouse"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-measure.XXXXXX")"
NETNS="gh-measure-$$"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
    ip link del "gh-m$$" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

SECRET="measure-secret-0123456789abcdefghijklmnopqrstuvwxyz"
KEY="measurekey"
APP_PORT=19600
RECORDS_PORT=19601
GRPC_PORT=19651
HTTP_PORT=19681

# --- The app and two gatehouses: one on loopback, one behind a veth pair -----------------------------------
node "$ROOT/tests/deploy/recorder.js" "127.0.0.1:$APP_PORT" "127.0.0.1:$RECORDS_PORT" 2>"$WORK/app.log" &
PIDS+=($!)
GATEHOUSE_API_SECRET="$SECRET" GATEHOUSE_API_KEY="$KEY" GATEHOUSE_LISTEN="127.0.0.1:$GRPC_PORT" \
    GATEHOUSE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" GATEHOUSE_LOG=warn \
    "$GATEHOUSE" serve 2>"$WORK/sidecar.log" &
SIDECAR_PID=$!
PIDS+=("$SIDECAR_PID")

ip netns add "$NETNS"
ip link add "gh-m$$" type veth peer name eth0 netns "$NETNS"
ip addr add 10.231.0.1/30 dev "gh-m$$"
ip link set "gh-m$$" up
ip -n "$NETNS" addr add 10.231.0.2/30 dev eth0
ip -n "$NETNS" link set eth0 up
ip -n "$NETNS" link set lo up
ip netns exec "$NETNS" env GATEHOUSE_API_SECRET="$SECRET" GATEHOUSE_API_KEY="$KEY" \
    GATEHOUSE_LISTEN="10.231.0.2:$GRPC_PORT" GATEHOUSE_HTTP_LISTEN="10.231.0.2:$HTTP_PORT" GATEHOUSE_LOG=warn \
    "$GATEHOUSE" serve 2>"$WORK/standalone.log" &
STANDALONE_PID=$!
PIDS+=("$STANDALONE_PID")

for url in "http://127.0.0.1:$HTTP_PORT/ready" "http://10.231.0.2:$HTTP_PORT/ready"; do
    for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$url" >/dev/null || die "$url is not ready"
done

# --- Three Envoy configurations from the chart's ----------------------------------------------------------
"$HELM" template m "$ROOT/helm/gatehouse" --set gatehouse.grpcPort="$GRPC_PORT" --set app.port="$APP_PORT" \
    --set envoy.port=19680 --set envoy.healthPort=19682 >"$WORK/chart.yaml"
"$PY" - "$WORK" <<'PYTHON'
import copy, sys, yaml
work = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(f"{work}/chart.yaml")) if d]
config = next(yaml.safe_load(d["data"]["envoy.yaml"]) for d in docs
              if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-envoy"))
def save(name, port, cfg):
    cfg = copy.deepcopy(cfg)
    cfg["admin"]["address"]["pipe"]["path"] = f"{work}/{name}-admin.sock"
    listeners = cfg["static_resources"]["listeners"]
    listeners[0]["address"]["socket_address"]["port_value"] = port
    listeners[1]["address"]["socket_address"]["port_value"] = port + 2
    yaml.safe_dump(cfg, open(f"{work}/{name}.yaml", "w"))
    return cfg
save("sidecar", 19700, config)
standalone = copy.deepcopy(config)
for cluster in standalone["static_resources"]["clusters"]:
    if cluster["name"] == "gatehouse":
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"] = "10.231.0.2"
save("standalone", 19720, standalone)
floor = copy.deepcopy(config)
hcm = floor["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_authz"]
save("no-authz", 19740, floor)
PYTHON

declare -A PORT=([no-authz]=19740 [sidecar]=19700 [standalone]=19720)
declare -A ENVOY_PID
for setup in no-authz sidecar standalone; do
    "$ENVOY" --config-path "$WORK/$setup.yaml" --disable-hot-restart --base-id "$((RANDOM + 1000))" \
        --log-level warning 2>"$WORK/envoy-$setup.log" &
    ENVOY_PID[$setup]=$!
    PIDS+=($!)
done
for setup in no-authz sidecar standalone; do
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$((PORT[$setup] + 2))/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
done

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
IDLE_GATEHOUSE="$(rss_kib "$SIDECAR_PID")"
IDLE_ENVOY="$(rss_kib "${ENVOY_PID[sidecar]}")"

TOKEN="$(GATEHOUSE_API_SECRET="$SECRET" "$GATEHOUSE" token issue --user alice)"
declare -A LATENCIES RATES
for round in $(seq "$ROUNDS"); do
  for connections in 1 16; do
    for setup in no-authz sidecar standalone; do
        url="http://127.0.0.1:${PORT[$setup]}/api/v1.0/feed/user/alice/?api_key=$KEY"
        code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $TOKEN" -H 'Stream-Auth-Type: jwt' "$url")"
        [[ "$code" == 200 ]] || die "$setup answered $code before loading"
        out="$(wrk -t1 -c"$connections" -d"${SECONDS_PER_ROUND}s" --latency -H "Authorization: $TOKEN" \
            -H 'Stream-Auth-Type: jwt' "$url")"
        p50="$(awk '$1 == "50%" { print $2 }' <<<"$out")"
        rate="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
        non2xx="$(awk '/Non-2xx/ { print $5 }' <<<"$out")"
        [[ -z "$non2xx" ]] || die "$setup answered non-2xx under load: $out"
        say "round $round, $connections connection(s), $setup: p50 $p50, $rate req/s"
        LATENCIES[$setup/$connections]+="$p50 "
        RATES[$setup/$connections]+="$rate "
    done
  done
done

to_us() { # wrk prints 812.00us, 1.23ms or 2.00s
    awk '{ v = $1; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else { sub(/s$/, "", v); print v * 1000000 } }'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo
echo "wrk -t1, $ROUNDS rounds of ${SECONDS_PER_ROUND}s each, alternating; medians over rounds"
printf '%-12s %12s %16s %14s\n' setup connections "p50 latency (us)" "requests/s"
for connections in 1 16; do
    for setup in no-authz sidecar standalone; do
        p50="$(for v in ${LATENCIES[$setup/$connections]}; do echo "$v" | to_us; done | median)"
        rate="$(echo "${RATES[$setup/$connections]}" | median)"
        printf '%-12s %12s %16s %14s\n' "$setup" "$connections" "$p50" "$rate"
    done
done
echo
printf 'gatehouse VmRSS: %s KiB idle, %s KiB after the load\n' "$IDLE_GATEHOUSE" "$(rss_kib "$SIDECAR_PID")"
printf 'Envoy VmRSS:     %s KiB idle, %s KiB after the load\n' "$IDLE_ENVOY" "$(rss_kib "${ENVOY_PID[sidecar]}")"
