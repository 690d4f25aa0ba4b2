#!/usr/bin/env bash
# bench/run-all.sh: every benchmark harness in one command.
#
#   bench/run-all.sh                 # full: each harness with its defaults, results under build-bench/
#   bench/run-all.sh --quick         # CI: each runs once at a tiny size; checks it ran and lost nothing
#   bench/run-all.sh --only "scaling latency" --out /tmp/results --bin build/release/bin
#
# Harnesses (in this order): contention, pipeline, exec_modes, sink_bench, scaling, latency,
# memory. Each writes to OUT/<name>/ and its output goes to OUT/<name>.log; a summary line per
# harness (ok / FAILED, seconds) ends the run. Numbers need a Release build (the default --bin);
# --quick only checks that the harnesses work, in any build. Exit status: 0 when every harness
# passed, 1 otherwise, 2 on bad flags. The full run takes about 10 minutes on 2 cores
# (each harness's default repeats; 2.6 minutes with --repeat 1).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/lib.sh"

all="contention pipeline exec_modes sink_bench scaling latency memory"
only="$all"
bin="$repo/build/release/bin"
out=""
quick=0
repeat=""
run_timeout=""

usage() {
  cat <<EOF
usage: $0 [--quick] [--only "NAME ..."] [--bin DIR] [--out DIR] [--repeat R]
  --quick         each harness once at a tiny size: checks it runs (CI: ctest -L bench)
  --only "N ..."  run only these harnesses (of: $all)
  --bin DIR       the built binaries (default build/release/bin)
  --out DIR       results (default build-bench/, or build-bench/quick with --quick)
  --repeat R      passed to every harness that repeats runs (default: each harness's own)
EOF
}
while (($#)); do
  case "$1" in
    --only) only="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
for n in $only; do [[ " $all " == *" $n "* ]] || die "unknown harness '$n' (of: $all)"; done
[[ -z "$repeat" ]] || need_int --repeat "$repeat"
[[ -d "$bin" ]] || die "no $bin: cmake --preset release && cmake --build --preset release -j2 (or pass --bin)"
bin=$(cd "$bin" && pwd)
[[ -n "$out" ]] || out="$repo/build-bench$( ((quick)) && echo /quick)"
bench_outdir

common=(--bin "$bin")
((quick)) && common+=(--quick)
rep=()
[[ -n "$repeat" ]] && rep=(--repeat "$repeat")

sink_bench() {  # the Google Benchmarks of the sink's write path, by batch size, and of its floor
  need_bins "$bin" sink_bench sqlite_floor_bench
  mkdir -p "$out/sink_bench"
  local name args
  for name in sink_bench sqlite_floor_bench; do
    args=(--benchmark_out="$out/sink_bench/$name.json" --benchmark_out_format=json)
    if ((quick)); then
      args+=(--benchmark_filter='batch_max:1000/')
    else
      args+=(--benchmark_repetitions="${repeat:-3}" --benchmark_report_aggregates_only=true)
    fi
    "$bin/$name" "${args[@]}" | tee "$out/sink_bench/$name.txt" || return 1
    # A run that could not finish is reported by SkipWithError, not by the exit status.
    grep -q 'ERROR OCCURRED' "$out/sink_bench/$name.txt" && return 1
    grep -q 'updates_per_s=' "$out/sink_bench/$name.txt" || return 1
  done
}

run_harness() {  # run_harness NAME
  case "$1" in
    contention) bash "$here/contention/run.sh" "${common[@]}" "${rep[@]}" --out "$out/contention" ;;
    pipeline) bash "$here/pipeline/run.sh" "${common[@]}" "${rep[@]}" --out "$out/pipeline" ;;
    exec_modes) bash "$here/exec_modes/run.sh" "${common[@]}" "${rep[@]}" --out "$out/exec_modes" ;;
    sink_bench) sink_bench ;;
    scaling) bash "$here/scaling/run.sh" "${common[@]}" "${rep[@]}" --out "$out/scaling" ;;
    latency) bash "$here/latency/run.sh" "${common[@]}" "${rep[@]}" --out "$out/latency" ;;
    memory) bash "$here/memory/run.sh" "${common[@]}" "${rep[@]}" --out "$out/memory" ;;
  esac
}

{
  bench_meta "bench/run-all.sh$( ((quick)) && echo ' --quick')"
  echo "harnesses: $only"
} | tee "$out/run-all.txt"
summary=()
failed=0
for n in $all; do
  [[ " $only " == *" $n "* ]] || continue
  echo "=== $n ($(date +%T), load $(load1))"
  t0=$(now_ms)
  run_harness "$n" >"$out/$n.log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  if (( rc == 0 )); then
    summary+=("$(printf '%-11s ok      %6s s' "$n" "$secs")")
  else
    failed=$((failed + 1))
    summary+=("$(printf '%-11s FAILED  %6s s (exit %d; see %s)' "$n" "$secs" "$rc" "$out/$n.log")")
    tail -15 "$out/$n.log" | sed 's/^/    /'
  fi
  echo "${summary[-1]}"
done
echo "load at end: $(uptime)" >>"$out/run-all.txt"
echo
echo "bench/run-all.sh$( ((quick)) && echo ' --quick'): results in $out"
printf '  %s\n' "${summary[@]}" | tee -a "$out/run-all.txt"
((failed == 0))
