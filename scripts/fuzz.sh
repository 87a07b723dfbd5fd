#!/usr/bin/env bash
# Coverage-guided fuzzing of gatehouse with libFuzzer, on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   fuzz each target (default: 30 s, every target)
#   scripts/fuzz.sh replay [TARGET...]                 run the inputs kept in fuzz/regressions/ once
#   scripts/fuzz.sh build                              only build the targets
#
# Targets: token policy_load cel id_pattern routes engine (fuzz/fuzz_targets/*.rs says what each one
# checks). The targets are built by plain `cargo build` with the instrumentation cargo-fuzz would add
# (`-Cpasses=sancov-module` and the sanitizer-coverage LLVM options, `--cfg fuzzing`), none of which
# needs nightly; no sanitizer, so panics, timeouts, leaks past the RSS limit and stack overflows are what
# is found. Output goes to fuzz/target (build) and fuzz/scratch/<run>/ (logs, artifacts and, while
# the run lasts, corpora), both ignored by git: the committed seeds in fuzz/corpus/<target>/ are
# copied, never grown.
#
# A failing input is left in fuzz/scratch/<run>/artifacts/<target>/; keep it in fuzz/regressions/<target>/
# (with a line in fuzz/regressions/README.md): every later run starts from it, and `replay` runs it. Exit status: 0 when every target ran clean, 1 when any crashed, timed out
# or ran out of memory, 2 for a usage or build error.
#
# Environment: FUZZ_TIMEOUT (seconds one input may take, 2), FUZZ_RSS_MB (2048), FUZZ_JOBS (cargo
# jobs: 1, or every core under CI=true), FUZZ_NICE (10), FUZZ_TOOLCHAIN (rustup toolchain, stable), FUZZ_ARGS (more libFuzzer
# flags). Needs no terminal; works under CI=true.

set -euo pipefail

ALL_TARGETS=(token policy_load cel id_pattern routes engine)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir="$root/fuzz"
# Each run has its own scratch directory, so runs side by side do not share corpora or artifacts.
scratch="$fuzz_dir/scratch/$(date -u +%Y%m%dT%H%M%SZ)-$$"
timeout_s=${FUZZ_TIMEOUT:-2}
rss_mb=${FUZZ_RSS_MB:-2048}
# One cargo job by default, so a developer's own builds keep a core; CI has the machine to itself.
if [ "${CI:-}" = true ]; then
  jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
else
  jobs=${FUZZ_JOBS:-1}
fi
niceness=${FUZZ_NICE:-10}
toolchain=${FUZZ_TOOLCHAIN:-stable}

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { say "$*"; exit 2; }

mode=fuzz
seconds=30
case "${1:-}" in
  replay | build) mode=$1; shift ;;
  '' ) ;;
  *[!0-9]*) ;;
  *) seconds=$1; shift ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${ALL_TARGETS[@]}")
fi
for t in "${targets[@]}"; do
  [ -f "$fuzz_dir/fuzz_targets/$t.rs" ] || die "unknown target '$t' (targets: ${ALL_TARGETS[*]})"
done

# --- what the build needs -------------------------------------------------------------------------

cargo_cmd=(cargo)
rustc_cmd=(rustc)
if command -v rustup >/dev/null 2>&1; then
  if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    say "installing the $toolchain toolchain"
    rustup toolchain install "$toolchain" --profile minimal >&2
  fi
  cargo_cmd=(rustup run "$toolchain" cargo)
  rustc_cmd=(rustup run "$toolchain" rustc)
fi
command -v "${cargo_cmd[0]}" >/dev/null 2>&1 || die "cargo not found"
# libfuzzer-sys compiles libFuzzer's C++ sources.
if ! command -v c++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing a C++ compiler (g++) for libFuzzer"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >&2
  else
    die "libFuzzer needs a C++ compiler (c++); install g++ or clang"
  fi
fi

triple=$("${rustc_cmd[@]}" -vV | sed -n 's/^host: //p')
[ -n "$triple" ] || die "cannot tell the host triple from rustc -vV"

# cargo-fuzz's flags with `--sanitizer none`: all stable. `--target` keeps them off build scripts and
# proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing"
export CARGO_TARGET_DIR="$fuzz_dir/target"
export CARGO_BUILD_JOBS="$jobs"
export CARGO_TERM_COLOR=never

build_args=(build --release --manifest-path "$fuzz_dir/Cargo.toml" --target "$triple")
for t in "${targets[@]}"; do
  build_args+=(--bin "$t")
done
say "building ${targets[*]} (release, $triple, $jobs job(s), nice $niceness)"
if ! nice -n "$niceness" "${cargo_cmd[@]}" "${build_args[@]}" >&2; then
  die "the build failed"
fi
bin_dir="$CARGO_TARGET_DIR/$triple/release"
[ "$mode" = build ] && exit 0

# --- replaying kept inputs ------------------------------------------------------------------------

if [ "$mode" = replay ]; then
  failed=0
  for t in "${targets[@]}"; do
    dir="$fuzz_dir/regressions/$t"
    [ -d "$dir" ] || continue
    for input in "$dir"/*; do
      [ -f "$input" ] || continue
      case "$input" in *.md) continue ;; esac
      if "$bin_dir/$t" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" "$input" >/dev/null 2>&1; then
        printf '%-12s %-50s ok\n' "$t" "$(basename "$input")"
      else
        printf '%-12s %-50s FAILS\n' "$t" "$(basename "$input")"
        failed=1
      fi
    done
  done
  exit "$failed"
fi

# --- fuzzing --------------------------------------------------------------------------------------

# libFuzzer's -max_len: the largest input each target reads (longer ones are cut).
max_len() {
  case "$1" in
    policy_load) echo 65536 ;;
    routes | engine | token) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p "$scratch"
summary=()
failed=0
for t in "${targets[@]}"; do
  corpus="$scratch/corpus/$t"
  artifacts="$scratch/artifacts/$t"
  log="$scratch/$t.log"
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "$fuzz_dir/corpus/$t" ]; then
    cp -R "$fuzz_dir/corpus/$t/." "$corpus/"
  fi
  # Inputs that once failed are run first, with the seeds.
  if [ -d "$fuzz_dir/regressions/$t" ]; then
    find "$fuzz_dir/regressions/$t" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$corpus/" \;
  fi
  flags=(
    -max_total_time="$seconds"
    -timeout="$timeout_s"
    -rss_limit_mb="$rss_mb"
    -malloc_limit_mb="$rss_mb"
    -max_len="$(max_len "$t")"
    -print_final_stats=1
    -artifact_prefix="$artifacts/"
  )
  if [ -f "$fuzz_dir/dict/$t.dict" ]; then
    flags+=(-dict="$fuzz_dir/dict/$t.dict")
  fi
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
  flags+=(${FUZZ_ARGS:-})
  say "running $t for ${seconds}s"
  status=0
  # The outer timeout is a backstop for a hang libFuzzer's own -timeout cannot interrupt.
  timeout -k 10 "$((seconds + 120))" nice -n "$niceness" \
    "$bin_dir/$t" "${flags[@]}" "$corpus" </dev/null >"$log" 2>&1 || status=$?

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -n 1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  found=$(find "$artifacts" -type f | wc -l | tr -d ' ')
  if [ "$status" -eq 0 ] && [ "$found" -eq 0 ]; then
    result=ok
  else
    failed=1
    if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
      result="TIMEOUT (input took over ${timeout_s}s)"
    elif grep -q -E 'out-of-memory|malloc\(.*\) exceeds limit' "$log"; then
      result="OUT OF MEMORY (over ${rss_mb} MB)"
    elif grep -q 'ERROR: libFuzzer: deadly signal' "$log"; then
      result="CRASH (panic or signal)"
    elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      result="HUNG (killed by the backstop timeout)"
    else
      result="FAILED (exit $status)"
    fi
    panic=$(grep -m 1 -E "^thread '.*' panicked at|^thread .* has overflowed its stack" -A 2 "$log" || true)
    [ -n "$panic" ] && printf '%s\n' "--- $t: $panic" >&2
    for a in "$artifacts"/*; do
      [ -f "$a" ] && say "$t: kept input $a"
    done
    say "$t: full log in $log"
  fi
  # The grown corpus is this run's only: drop it, keep the log and any artifact.
  rm -rf "$corpus"
  summary+=("$(printf '%-12s %12s %9s %7s %8s %12s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")")
done

say "logs and artifacts in $scratch"
printf '\n%-12s %12s %9s %7s %8s %12s %8s  %s\n' target execs exec/s cov ft corpus rss_mb result
for line in "${summary[@]}"; do
  printf '%s\n' "$line"
done
exit "$failed"
