#!/usr/bin/env bash
# Soak test (not run in CI): one release gatehouse on loopback under steady mixed traffic for a long
# time, with everything that changes in production changing underneath it, then checks that every call
# was answered correctly and that memory and file descriptors stayed flat.
#
#   scripts/soak.sh [DURATION]          DURATION: 30m (default), 90s, 2h, ... of traffic
#
# What runs, all on 127.0.0.1:
# - gatehouse serve with a temporary policy directory (the Feeds preset plus a toggle file), an API key,
#   the HTTP listener, a decision-log file rotated at a small size, and OTLP export (metrics every 5 s,
#   1% of spans) to examples/otlp_sink.rs;
# - capacity first: 10 s of gatehouse.v1 Check at full concurrency with examples/load.rs; then, for the
#   whole duration, examples/soak_check.rs at SOAK_RATE_FRACTION (half) of that rate: Check,
#   CheckBatch, Envoy ext_authz over gRPC and HTTP /authz/<path> in turn, with a token from
#   `gatehouse token issue`;
# - every SOAK_RELOAD_EVERY seconds a policy change written into the directory (write and rename),
#   alternating an invalid file (YAML syntax, bad effect, duplicate rule, undefined list: each must be
#   refused while the last good set keeps serving) and a valid version of the toggle file, A or B. A
#   allows alice to read feeds soaka:*, B feeds soakb:*; every answer names the revision that decided
#   it, and the probes for soaka:bob and soakb:bob must be answered as that revision's version says;
# - the OTLP receiver killed (SIGKILL) and restarted every SOAK_OTLP_EVERY seconds, down
#   SOAK_OTLP_DOWN seconds each time;
# - SOAK_IDLE (300) idle TCP connections held open to the gRPC and HTTP listeners, opened again when
#   the server closes them (scripts/soak-idle.py);
# - every SOAK_SAMPLE_EVERY seconds (scripts/soak-proc.py): the server's RSS, threads, CPU time, open
#   fds (live TCP connections, everything else, sockets in CLOSE_WAIT), calls done/failed;
# - at the end, SIGTERM with the idle connections still open (shutdown grace 20 s).
#
# It fails (exit 1) if any call was not answered as expected (wrong decision, decision that disagrees
# with its revision, unknown revision, error, timeout), a valid change was not served or an invalid one
# not refused within 5 s, a decision-log line is not JSON, the server did not exit 0 on SIGTERM, or
# after the warm-up (SOAK_WARMUP, default max(30 s, a tenth of the duration)) the median RSS of the
# last third of the samples exceeds that of the first third by more than SOAK_RSS_TOLERANCE (0.15), or
# the median count of fds other than live connections, or of sockets in CLOSE_WAIT, by more than
# SOAK_FD_TOLERANCE (5); the total fd count follows the clients' connections and is only reported. The
# figures go to target/soak/report.md (markdown, for RELIABILITY.md) with the raw material beside it:
# samples.tsv, summary.json, the server's, sink's and client's logs. scripts/soak-README-draft.md
# describes the run at more length.
#
# Other settings: SOAK_RATE (calls/s; skips the capacity measurement), SOAK_GRPC_PORT (50581),
# SOAK_HTTP_PORT (50582), SOAK_OTLP_PORT (50583), SOAK_LOG_MAX_BYTES (1048576), SOAK_LOG_MAX_FILES (3),
# SOAK_BUILD=0 (use the binaries already in target/release), SOAK_OUT (target/soak).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

say() { printf 'soak: %s\n' "$*" >&2; }
die() {
    printf 'soak: error: %s\n' "$*" >&2
    exit 2
}

# --- Settings ---------------------------------------------------------------------------------------------
to_seconds() {
    local text=$1 n
    case $text in
        *h) n=${text%h}; [[ $n =~ ^[0-9]+$ ]] && echo $((n * 3600)) ;;
        *m) n=${text%m}; [[ $n =~ ^[0-9]+$ ]] && echo $((n * 60)) ;;
        *s) n=${text%s}; [[ $n =~ ^[0-9]+$ ]] && echo "$n" ;;
        *) [[ $text =~ ^[0-9]+$ ]] && echo "$text" ;;
    esac
}
duration_text="${1:-30m}"
duration="$(to_seconds "$duration_text" || true)"
[[ -n "$duration" && "$duration" -ge 30 ]] || die "duration must be at least 30s, like 90s, 30m or 2h (got '$duration_text')"

grpc_port="${SOAK_GRPC_PORT:-50581}"
http_port="${SOAK_HTTP_PORT:-50582}"
otlp_port="${SOAK_OTLP_PORT:-50583}"
rate_fraction="${SOAK_RATE_FRACTION:-0.5}"
reload_every="${SOAK_RELOAD_EVERY:-3}"
otlp_default=$((duration / 6))
((otlp_default < 30)) && otlp_default=30
((otlp_default > 120)) && otlp_default=120
otlp_every="${SOAK_OTLP_EVERY:-$otlp_default}"
otlp_down="${SOAK_OTLP_DOWN:-15}"
idle_count="${SOAK_IDLE:-300}"
sample_every="${SOAK_SAMPLE_EVERY:-10}"
warmup_default=$((duration / 10))
((warmup_default < 30)) && warmup_default=30
warmup="${SOAK_WARMUP:-$warmup_default}"
log_max_bytes="${SOAK_LOG_MAX_BYTES:-1048576}"
log_max_files="${SOAK_LOG_MAX_FILES:-3}"
rss_tolerance="${SOAK_RSS_TOLERANCE:-0.15}"
fd_tolerance="${SOAK_FD_TOLERANCE:-5}"
out="${SOAK_OUT:-$root/target/soak}"
api_key=soakkey
# Longer than the listeners' 10 s timeouts, so the report tells a shutdown they bound from one cut
# short at the end of the grace period.
grace=20
secret="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

for tool in curl python3 od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done
for port in "$grpc_port" "$http_port" "$otlp_port"; do
    if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (set SOAK_GRPC_PORT, SOAK_HTTP_PORT, SOAK_OTLP_PORT)"
    fi
done

# --- Build ------------------------------------------------------------------------------------------------
if [[ "${SOAK_BUILD:-1}" != 0 ]]; then
    say "building the release binary and examples (nice 10)"
    nice -n 10 cargo build --release --quiet --bins --examples
fi
bin="$root/target/release"
for exe in gatehouse examples/load examples/otlp_sink examples/soak_check; do
    [[ -x "$bin/$exe" ]] || die "$bin/$exe is missing: build with cargo build --release --bins --examples"
done

# --- Working files ----------------------------------------------------------------------------------------
mkdir -p "$out"
rm -f "$out"/{report.md,samples.tsv,summary.json,server.log,sink.log,driver.log,driver.txt,idle.txt,idle-before-stop.txt,idle.log,reloads.txt,reloads.log,otlp.txt,capacity.json,metrics-end.txt,shutdown.txt}
work="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-soak.XXXXXX")"
policy="$work/policies"
staging="$work/staging"
logdir="$work/log"
mkdir -p "$policy" "$staging" "$logdir"
cp policies/stream-feeds/feeds.yaml policies/stream-feeds/routes.yaml "$policy/"

server_pid=""
driver_pid=""
idle_pid=""
loop_pids=()
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    touch "$work/stop" 2>/dev/null || true
    local pid
    for pid in "${loop_pids[@]}" "$driver_pid" "$idle_pid" "$server_pid"; do
        if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    if [[ -s "$work/sink.pid" ]]; then
        kill "$(cat "$work/sink.pid")" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The toggle file's two valid versions and the invalid files in between.
toggle() {
    cat <<EOF
# Written by scripts/soak.sh (version $1): users may read feeds of the group soak$2.
rules:
  - name: soak-version-$2
    description: soak toggle, version $1
    effect: allow
    resource: feed
    id: "soak$2:*"
    actions: [read]
    when:
      principal: user
EOF
}
toggle A a >"$staging/a.yaml"
toggle B b >"$staging/b.yaml"
cat >"$staging/bad-syntax.yaml" <<'EOF'
# Invalid: not YAML.
rules:
  - name: soak-broken
    effect: allow
    resource: [feed
EOF
cat >"$staging/bad-effect.yaml" <<'EOF'
# Invalid: no such effect.
rules:
  - name: soak-broken
    effect: maybe
    resource: feed
    actions: [read]
EOF
cat >"$staging/bad-duplicate.yaml" <<'EOF'
# Invalid: a rule name the preset already has.
rules:
  - name: own-feeds
    effect: allow
    resource: feed
    actions: [read]
    when:
      principal: user
EOF
cat >"$staging/bad-list.yaml" <<'EOF'
# Invalid: an undefined list.
rules:
  - name: soak-broken
    effect: allow
    resource: feed
    actions: [read]
    when:
      in: { captures.group: "$no_such_list" }
EOF
# Replaces the toggle file in one rename, as editors and ConfigMap updates do.
install_toggle() {
    cp "$staging/$1.yaml" "$staging/.next"
    mv -f "$staging/.next" "$policy/soak-toggle.yaml"
}
install_toggle a

# --- Helpers ----------------------------------------------------------------------------------------------
http_url="http://127.0.0.1:$http_port"
ready_revision() { curl -s --max-time 2 "$http_url/ready" 2>/dev/null | awk '$1 == "ready" {print $2}' || true; }
metric() { curl -s --max-time 2 "$http_url/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}' || true; }
reloads_failed() { metric 'gatehouse_reloads_total{result="failed"}'; }
# Polls a command every 0.1 s until it succeeds, for at most $1 seconds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    while ((SECONDS < deadline)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}
revision_is() { [[ "$(ready_revision)" == "$1" ]]; }
# shellcheck disable=SC2317 # run through wait_for
revision_not() {
    local r
    r="$(ready_revision)"
    [[ -n "$r" && "$r" != "$1" ]]
}
# shellcheck disable=SC2317 # run through wait_for
failed_above() {
    local n
    n="$(reloads_failed)"
    [[ -n "$n" && "$n" -gt "$1" ]]
}
kv() { awk -v k="$2" '$1 == k {print $2}' "$1" 2>/dev/null || true; }
stopping() { [[ -e "$work/stop" ]] || ((SECONDS >= end)); }
# Sleeps $1 seconds in steps of one, returning early once the run is stopping.
nap() {
    local i
    for ((i = 0; i < $1; i++)); do
        stopping && return 0
        sleep 1
    done
}

# The receiver runs outside this shell's jobs (no "Killed" notices); its pid is in sink.pid.
start_sink() {
    ("$bin/examples/otlp_sink" "127.0.0.1:$otlp_port" 2>>"$out/sink.log" &
        echo $! >"$work/sink.pid")
    local i
    for i in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$otlp_port") 2>/dev/null && return 0
        sleep 0.1
    done
    say "the OTLP receiver did not start (attempt $i)"
    return 1
}

# --- Start ------------------------------------------------------------------------------------------------
start_sink || die "the OTLP receiver did not start: $(tail -3 "$out/sink.log")"
env GATEHOUSE_API_SECRET="$secret" GATEHOUSE_API_KEY="$api_key" \
    GATEHOUSE_LISTEN="127.0.0.1:$grpc_port" GATEHOUSE_HTTP_LISTEN="127.0.0.1:$http_port" \
    GATEHOUSE_POLICY_DIR="$policy" \
    GATEHOUSE_DECISION_LOG_FILE="$logdir/decisions.jsonl" \
    GATEHOUSE_DECISION_LOG_MAX_BYTES="$log_max_bytes" GATEHOUSE_DECISION_LOG_MAX_FILES="$log_max_files" \
    GATEHOUSE_SHUTDOWN_GRACE="${grace}s" \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" OTEL_METRIC_EXPORT_INTERVAL=5000 \
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01 \
    OTEL_SERVICE_NAME=gatehouse-soak \
    "$bin/gatehouse" serve >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    grep -q serving "$out/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
grep -q serving "$out/server.log" || { cat "$out/server.log" >&2; die "the server did not start"; }
[[ -n "$(ready_revision)" ]] || die "the HTTP listener does not answer /ready"

read -r rss_launch fds_launch _ <<<"$(python3 scripts/soak-proc.py "$server_pid")"

# The revisions of versions A and B; going back to A must give A's revision again.
rev_a="$(ready_revision)"
install_toggle b
wait_for 10 revision_not "$rev_a" || die "version B was not loaded within 10 s: $(tail -5 "$out/server.log")"
rev_b="$(ready_revision)"
install_toggle a
wait_for 10 revision_is "$rev_a" || die "going back to version A did not give A's revision ($rev_a) again"
say "revision of version A: $rev_a, of version B: $rev_b"

token="$(GATEHOUSE_API_SECRET="$secret" "$bin/gatehouse" token issue --user alice --ttl "$((duration + 3600))s")"
[[ -n "$token" ]] || die "gatehouse token issue gave no token"

if [[ -n "${SOAK_RATE:-}" ]]; then
    rate="$SOAK_RATE"
    capacity=""
    say "rate $rate calls/s (SOAK_RATE; capacity not measured)"
else
    say "measuring capacity: 10 s of gatehouse.v1 Check, 16 tasks over 4 connections"
    "$bin/examples/load" --addr "127.0.0.1:$grpc_port" --secret "$secret" --api-key "$api_key" \
        --rpc check --rounds 1 --duration 10s --warmup 2s --concurrency 16 --connections 4 --json \
        >"$out/capacity.json" 2>/dev/null || die "the capacity measurement failed"
    capacity="$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["check"]["median"]["throughput_rps"]))' "$out/capacity.json")"
    rate="$(python3 -c 'import sys; print(max(1, round(float(sys.argv[1]) * float(sys.argv[2]))))' "$capacity" "$rate_fraction")"
    say "capacity $capacity Check/s; soak rate $rate calls/s ($rate_fraction of it)"
fi

# --- The soak ---------------------------------------------------------------------------------------------
start_epoch="$(date +%s)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || commit="$commit (with uncommitted changes)"
python3 scripts/soak-idle.py --grpc "127.0.0.1:$grpc_port" --http "127.0.0.1:$http_port" \
    --count "$idle_count" --duration "$((duration + 120))" --status "$out/idle.txt" >"$out/idle.log" 2>&1 &
idle_pid=$!
for _ in $(seq 50); do
    [[ -s "$out/idle.txt" ]] && break
    sleep 0.1
done
say "$(kv "$out/idle.txt" open) idle connections open; traffic for ${duration}s"

SECONDS=0
end=$duration
SOAK_API_KEY="$api_key" SOAK_TOKEN="$token" "$bin/examples/soak_check" \
    --addr "127.0.0.1:$grpc_port" --http "127.0.0.1:$http_port" \
    --revision-a "$rev_a" --revision-b "$rev_b" --rate "$rate" --duration "${duration}s" \
    --status-file "$out/driver.txt" --summary "$out/summary.json" \
    --watch-rotations "$logdir/decisions.jsonl" >"$out/driver.log" 2>&1 &
driver_pid=$!

# Policy changes: invalid, valid (B), invalid, valid (A), ...
reload_loop() {
    local bad=(bad-syntax bad-effect bad-duplicate bad-list) step=0 serving=$rev_a
    local valid_ok=0 invalid_refused=0 unexpected=0 version want before variant
    while ! stopping; do
        nap "$reload_every"
        stopping && break
        if ((step % 2 == 0)); then
            variant=${bad[$(((step / 2) % ${#bad[@]}))]}
            before="$(reloads_failed)"
            install_toggle "$variant"
            if [[ -n "$before" ]] && wait_for 5 failed_above "$before" && revision_is "$serving"; then
                invalid_refused=$((invalid_refused + 1))
            else
                unexpected=$((unexpected + 1))
                echo "$SECONDS s: $variant: not refused within 5 s, or the revision changed (serving $(ready_revision), expected $serving)" >>"$out/reloads.log"
            fi
        else
            if ((step % 4 == 1)); then version=b want=$rev_b; else version=a want=$rev_a; fi
            install_toggle "$version"
            if wait_for 5 revision_is "$want"; then
                valid_ok=$((valid_ok + 1))
                serving=$want
            else
                unexpected=$((unexpected + 1))
                echo "$SECONDS s: version $version not served within 5 s (serving $(ready_revision))" >>"$out/reloads.log"
            fi
        fi
        step=$((step + 1))
        printf 'valid_ok %s\ninvalid_refused %s\nunexpected %s\n' "$valid_ok" "$invalid_refused" "$unexpected" >"$out/reloads.txt"
    done
}

# The OTLP receiver dies and comes back.
otlp_loop() {
    local restarts=0
    while ! stopping; do
        nap "$otlp_every"
        stopping && break
        kill -9 "$(cat "$work/sink.pid")" 2>/dev/null || true
        echo "soak: receiver killed at ${SECONDS}s" >>"$out/sink.log"
        sleep "$otlp_down"
        if start_sink; then
            restarts=$((restarts + 1))
        fi
        echo "restarts $restarts" >"$out/otlp.txt"
    done
}

printf 'ready\n' >"$out/reloads.txt"
echo "restarts 0" >"$out/otlp.txt"
reload_loop &
loop_pids+=($!)
otlp_loop &
loop_pids+=($!)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
sample() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$SECONDS" \
        "$(python3 scripts/soak-proc.py "$server_pid" || printf '0\t0\t0\t0\t0\t0\t0')" \
        "$(kv "$out/driver.txt" calls)" "$(kv "$out/driver.txt" failed)" \
        "$(kv "$out/reloads.txt" valid_ok)" "$(kv "$out/reloads.txt" invalid_refused)" \
        "$(kv "$out/driver.txt" rotations)" "$(kv "$out/otlp.txt" restarts)" "$(kv "$out/idle.txt" open)" \
        "$(cpu_ticks "${driver_pid:-0}")" "$(awk '{print $1 * 100}' /proc/loadavg)" >>"$out/samples.tsv"
}
printf 't_s\trss_kb\tfds\tthreads\tcpu_ticks\testablished\tother_fds\tclose_wait\tcalls\tfailed\treloads_ok\treloads_refused\trotations\totlp_restarts\tidle_open\tclient_cpu_ticks\tload1_x100\n' >"$out/samples.tsv"
sample
next_sample=$sample_every
while kill -0 "$driver_pid" 2>/dev/null && ((SECONDS < duration + 60)); do
    sleep 1
    if ((SECONDS >= next_sample)); then
        sample
        next_sample=$((next_sample + sample_every))
        say "$(tail -1 "$out/samples.tsv" | awk -F'\t' '{printf "%5ss  RSS %6.1f MiB  fds %4s (other than connections %s)  calls %9s  failed %s  reloads ok %s refused %s  rotations %s  OTLP restarts %s  idle %s", $1, $2 / 1024, $3, $7, $9, $10, $11, $12, $13, $14, $15}')"
    fi
done
driver_rc=0
if kill -0 "$driver_pid" 2>/dev/null; then
    say "the client did not stop by itself: stopping it"
    kill "$driver_pid" 2>/dev/null || true
    driver_rc=124
fi
wait "$driver_pid" || driver_rc=$?
driver_pid=""
sample
touch "$work/stop"
for pid in "${loop_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
loop_pids=()
curl -s --max-time 5 "$http_url/metrics" >"$out/metrics-end.txt" || true
hwm_kb="$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)"
cp "$out/idle.txt" "$out/idle-before-stop.txt" 2>/dev/null || true

# Shutdown with the idle connections still open.
stop_start="$(date +%s.%N)"
kill -TERM "$server_pid"
server_rc=0
for _ in $(seq $(((grace + 15) * 10))); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    say "the server did not exit within $((grace + 15)) s of SIGTERM: killing it"
    kill -9 "$server_pid" 2>/dev/null || true
    server_rc=137
fi
wait "$server_pid" || server_rc=$?
stop_end="$(date +%s.%N)"
server_pid=""
printf 'exit %s\nseconds %s\n' "$server_rc" "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$stop_start" "$stop_end")" >"$out/shutdown.txt"
kill "$idle_pid" 2>/dev/null || true
wait "$idle_pid" 2>/dev/null || true
idle_pid=""
kill "$(cat "$work/sink.pid")" 2>/dev/null || true

# --- Report -----------------------------------------------------------------------------------------------
set +e
python3 - "$out" "$logdir" "$duration" "$warmup" "$rss_tolerance" "$fd_tolerance" "$(getconf CLK_TCK)" \
    "${capacity:-}" "$rate" "$driver_rc" "$rss_launch" "$fds_launch" "$hwm_kb" "$commit" \
    "$start_epoch" "$idle_count" "$reload_every" "$otlp_every" "$otlp_down" "$log_max_bytes" \
    "$log_max_files" "$rate_fraction" "$grace" <<'PY'
import glob, json, os, statistics, sys, time

(out, logdir, duration, warmup, rss_tol, fd_tol, tick, capacity, rate, driver_rc, rss_launch, fds_launch,
 hwm_kb, commit, start_epoch, idle_count, reload_every, otlp_every, otlp_down, log_max_bytes,
 log_max_files, rate_fraction, grace) = sys.argv[1:]
duration, warmup, tick = int(duration), int(warmup), int(tick)
rss_tol, fd_tol = float(rss_tol), int(fd_tol)

def kv(name):
    try:
        with open(os.path.join(out, name)) as f:
            return dict(line.split(None, 1) for line in f if len(line.split(None, 1)) == 2)
    except OSError:
        return {}

def num(value, default=0):
    try:
        return int(str(value).strip())
    except ValueError:
        return default

rows = []
with open(os.path.join(out, "samples.tsv")) as f:
    header = f.readline().rstrip("\n").split("\t")
    for line in f:
        fields = line.rstrip("\n").split("\t")
        rows.append({k: num(v) for k, v in zip(header, fields)})
try:
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
except (OSError, ValueError):
    summary = {}
reloads, otlp, idle, shutdown = kv("reloads.txt"), kv("otlp.txt"), kv("idle-before-stop.txt"), kv("shutdown.txt")
metrics = {}
try:
    with open(os.path.join(out, "metrics-end.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                metrics[parts[0]] = parts[1]
except OSError:
    pass

try:
    with open(os.path.join(out, "server.log"), errors="replace") as f:
        server_log = f.read()
except OSError:
    server_log = ""
cut_short = "grace period over" in server_log
shutdown_s = float(shutdown.get("seconds", 0) or 0)

# The decision log files that are kept: every line must be a JSON object.
log_lines = bad_lines = 0
for path in sorted(glob.glob(os.path.join(logdir, "decisions.jsonl*"))):
    with open(path, "rb") as f:
        for raw in f:
            log_lines += 1
            try:
                if not isinstance(json.loads(raw), dict):
                    bad_lines += 1
            except ValueError:
                bad_lines += 1

# Flatness: samples after the warm-up, first third against last third.
steady = [r for r in rows if r["t_s"] >= warmup]
third = max(len(steady) // 3, 1)
first, last = steady[:third], steady[-third:]
med = lambda rs, k: statistics.median(r[k] for r in rs) if rs else 0
rss_first, rss_last = med(first, "rss_kb"), med(last, "rss_kb")
fds_first, fds_last = med(first, "fds"), med(last, "fds")
other_first, other_last = med(first, "other_fds"), med(last, "other_fds")
cw_first, cw_last = med(first, "close_wait"), med(last, "close_wait")
rss_ratio = rss_last / rss_first if rss_first else 0
def cpu_share(key, rs):
    # The last sample is taken after the client exited: its own CPU time is read from the one before.
    rs = [r for r in rs if r[key]]
    if len(rs) < 2:
        return 0
    return (rs[-1][key] - rs[0][key]) / tick / max(rs[-1]["t_s"] - rs[0]["t_s"], 1)
cpu, client_cpu = cpu_share("cpu_ticks", rows), cpu_share("client_cpu_ticks", rows)
load = statistics.median(r["load1_x100"] / 100 for r in rows) if rows else 0
# Growth per hour over the steady samples (least squares), to read beside the thirds.
slope = 0.0
if len(steady) > 2:
    xs = [r["t_s"] for r in steady]; ys = [r["rss_kb"] for r in steady]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 3600 if den else 0.0

doors = summary.get("doors", {})
def door(name, key):
    return doors.get(name, {}).get(key, 0)
calls = summary.get("calls", 0)
failed = summary.get("failed", 0)
mib = lambda kb: f"{kb / 1024:.1f}"
srv_ok = metrics.get('gatehouse_reloads_total{result="ok"}', "?")
srv_failed = metrics.get('gatehouse_reloads_total{result="failed"}', "?")
dropped = {k.split('"')[1]: v for k, v in metrics.items() if k.startswith("gatehouse_decision_log_dropped_total{")}
idle_n = lambda key: num(idle.get(key, 0))
def lifetime(kind):
    value = idle.get(f"min_lifetime_s_{kind}", "-").strip()
    return f", shortest {float(value):.0f} s" if value not in ("-", "") else ""
idle_text = (f"gRPC: {idle_n('open_grpc_raw')} silent + {idle_n('open_grpc_h2')} HTTP/2 open at the end, "
             f"{idle_n('closed_grpc_raw') + idle_n('closed_grpc_h2')} closed by the server{lifetime('grpc_raw')}; "
             f"HTTP: {idle_n('open_http_raw')} silent + {idle_n('open_http_keepalive')} keep-alive open at the end, "
             f"{idle_n('closed_http_raw') + idle_n('closed_http_keepalive')} closed by the server{lifetime('http_raw')} "
             f"and opened again; {idle_n('connect_errors')} failed connects")

checks = []
def check(ok, text):
    checks.append((ok, text))
check(driver_rc in ("0", "1") and calls > 0, f"the client ran to the end (exit {driver_rc})")
check(failed == 0, f"no failed call: {failed} of {calls:,} calls answered otherwise than expected")
probes = sum(door(d, "probes") for d in doors)
check(summary.get("decided_by_a", 0) > 0 and summary.get("decided_by_b", 0) > 0,
      f"both versions served: {summary.get('decided_by_a', 0):,} answers at A's revision, {summary.get('decided_by_b', 0):,} at B's; {probes:,} version-dependent answers checked against their revision")
check(num(reloads.get("unexpected", 1)) == 0 and num(reloads.get("valid_ok", 0)) > 0 and num(reloads.get("invalid_refused", 0)) > 0,
      f"reloads as expected: {num(reloads.get('valid_ok', 0))} valid changes served, {num(reloads.get('invalid_refused', 0))} invalid files refused, {num(reloads.get('unexpected', 0))} otherwise")
check(bad_lines == 0 and log_lines > 0, f"decision log readable: {bad_lines} of {log_lines:,} kept lines not JSON")
check(shutdown.get("exit", "").strip() == "0", f"clean shutdown on SIGTERM: exit {shutdown.get('exit', '?').strip()} after {shutdown.get('seconds', '?').strip()} s, with {idle_n('open')} idle connections open")
check(len(steady) >= 6, f"enough samples after the {warmup} s warm-up: {len(steady)}")
check(rss_first > 0 and rss_ratio <= 1 + rss_tol,
      f"RSS flat: median of the last third {mib(rss_last)} MiB, first third {mib(rss_first)} MiB (x{rss_ratio:.3f}, limit x{1 + rss_tol:.2f})")
check(other_last - other_first <= fd_tol and cw_last - cw_first <= fd_tol,
      f"open fds flat: fds other than live connections, median of the last third {other_last:g}, first third {other_first:g}; "
      f"connections closed by the peer and not by the server (CLOSE_WAIT) {cw_last:g} and {cw_first:g} (limit +{fd_tol} each; "
      f"all fds {fds_last:g} and {fds_first:g}, which follow the clients' connections)")

elapsed = summary.get("elapsed_s", 0) or 1
lat = lambda d: f"{door(d, 'p50_us'):,.0f} / {door(d, 'p99_us'):,.0f} µs"
when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(start_epoch)))
rss_values = [r["rss_kb"] for r in rows if r["rss_kb"]]
fd_values = [r["fds"] for r in rows if r["fds"]]
table = [
    ("Traffic", f"{elapsed:,.0f} s, started {when}, commit {commit}"),
    ("Capacity (gatehouse.v1 Check, 16 tasks, 10 s)", f"{int(capacity):,} calls/s" if capacity else "not measured (SOAK_RATE)"),
    ("Rate: target / achieved", f"{float(rate):,.0f} / {summary.get('achieved_rate', 0):,.0f} calls/s ({rate_fraction} of capacity)" if capacity else f"{float(rate):,.0f} / {summary.get('achieved_rate', 0):,.0f} calls/s"),
    ("Calls: Check / CheckBatch / ext_authz / HTTP /authz", f"{calls:,}: {door('check', 'calls'):,} / {door('check_batch', 'calls'):,} / {door('ext_authz', 'calls'):,} / {door('http_authz', 'calls'):,}"),
    ("Failed calls", f"{failed:,}"),
    ("Answers at revision A / B", f"{summary.get('decided_by_a', 0):,} / {summary.get('decided_by_b', 0):,} ({probes:,} version-dependent decisions checked)"),
    ("Latency p50 / p99: Check", lat("check")),
    ("Latency p50 / p99: CheckBatch (7 items)", lat("check_batch")),
    ("Latency p50 / p99: ext_authz", lat("ext_authz")),
    ("Latency p50 / p99: HTTP /authz", lat("http_authz")),
    ("Policy reloads: valid served / invalid refused / otherwise", f"{num(reloads.get('valid_ok', 0))} / {num(reloads.get('invalid_refused', 0))} / {num(reloads.get('unexpected', 0))} (one change every {reload_every} s; server counters ok {srv_ok}, failed {srv_failed})"),
    ("Decision-log rotations", f"{summary.get('rotations', 0):,} (max {int(log_max_bytes):,} bytes, {log_max_files} files kept){' (inotify overflowed: a lower bound)' if summary.get('rotation_events_overflowed') else ''}"),
    ("Decision-log entries dropped", ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "0"),
    ("Decision-log lines kept / not JSON", f"{log_lines:,} / {bad_lines}"),
    ("OTLP receiver restarts", f"{num(otlp.get('restarts', 0))} (killed every {otlp_every} s, down {otlp_down} s)"),
    (f"Idle connections ({idle_count})", idle_text),
    ("RSS at launch / first sample / end / max", f"{mib(int(rss_launch))} / {mib(rows[0]['rss_kb']) if rows else '?'} / {mib(rows[-1]['rss_kb']) if rows else '?'} / {mib(max(rss_values)) if rss_values else '?'} MiB (peak {mib(int(hwm_kb))} MiB)"),
    ("RSS median, first / last third after warm-up", f"{mib(rss_first)} / {mib(rss_last)} MiB (x{rss_ratio:.3f}; "
        + (f"least-squares trend {slope / 1024:+.1f} MiB/h)" if steady and steady[-1]["t_s"] - steady[0]["t_s"] >= 600 else "no trend: under 10 min of samples)")),
    ("Open fds at launch / first sample / end / max", f"{fds_launch} / {rows[0]['fds'] if rows else '?'} / {rows[-1]['fds'] if rows else '?'} / {max(fd_values) if fd_values else '?'}"),
    ("Open fds median, first / last third after warm-up", f"{fds_first:g} / {fds_last:g}; other than live connections {other_first:g} / {other_last:g}; CLOSE_WAIT {cw_first:g} / {cw_last:g}"),
    ("Server threads, end", f"{rows[-1]['threads'] if rows else '?'}"),
    ("CPU: server / soak client", f"{cpu * 100:.0f}% / {client_cpu * 100:.0f}% of one core"),
    ("Machine: CPUs, median 1-min load average", f"{os.cpu_count()}, {load:.1f}"),
    ("Shutdown (SIGTERM to exit, idle connections open)", f"{shutdown.get('seconds', '?').strip()} s, exit {shutdown.get('exit', '?').strip()}, grace {grace} s{', cut short at its end' if cut_short else ''}"),
]
notes = []
if cut_short:
    notes.append(f"shutdown was cut short at the end of the grace period ({grace} s): calls or connections were still open (server.log)")
elif shutdown_s >= 2:
    notes.append(f"shutdown took {shutdown_s:.1f} s with {idle_n('open')} idle connections open: graceful shutdown waits for connections that have not closed, here until the listeners' timeouts close the idle ones")
if summary.get("achieved_rate", 0) < 0.95 * float(rate):
    notes.append(f"the client reached {summary.get('achieved_rate', 0):,.0f} of {float(rate):,.0f} calls/s: the machine (client, server and anything else running) could not keep the rate")
passed = all(ok for ok, _ in checks)
lines = [f"### Soak: {duration // 60} min {duration % 60} s" if duration % 60 else f"### Soak: {duration // 60} min", "",
         "| Figure | Value |", "|---|---|"]
lines += [f"| {k} | {v} |" for k, v in table]
lines += ["", "Checks:", ""]
lines += [f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
if notes:
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
if summary.get("failures"):
    lines += ["", "First failures:", ""] + [f"- `{f}`" for f in summary["failures"]]
lines += ["", f"Result: {'PASS' if passed else 'FAIL'}", ""]
text = "\n".join(lines)
with open(os.path.join(out, "report.md"), "w") as f:
    f.write(text)
print(text)
sys.exit(0 if passed else 1)
PY
result=$?
set -e
say "report: $out/report.md (samples.tsv, summary.json and the logs beside it)"
exit "$result"
