#!/usr/bin/env bash
# bench/latency: issue 4's latency target: at light load, result sent -> committed, p50 and p99
# <= --batch-delay-ms + 5 ms.
#
# A real topicflow-sink runs alone on private ipc:// endpoints; topicflow-bench-probe plays the
# broker (it binds --frontend, so it receives the tasks the sink dispatches) and a worker with
# one slot: it registers COUNT topics, then for one task at a time sends `started`, waits until a
# reader of the database sees the row `running`, pauses 2-10 ms, sends `completed` and measures
# from just before that send to the moment a reader sees the row `completed` (the database is
# polled every 100 us by a read-only connection: what "committed" means to anyone else). One
# update in flight at a time: every update opens its own batch, so each waits the whole batch
# delay, the worst case of a light load. `started` updates are timed the same way.
#
#   bench/latency/run.sh --repeat 3                       # batch delays 20 (default) and 5 ms
#   bench/latency/run.sh --quick                          # CI: 20 samples, once
#
# Writes latency.csv (one line per run), latency-medians.csv, latency.md, samples-*.csv and
# meta.txt to --out. Exit status 0 when every run produced its samples, 1 otherwise, 2 on bad flags.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build-bench/latency"
delays="20 5"
count=300
repeat=3
run_timeout=120
quick=0
sink_args=()

usage() {
  cat <<EOF
usage: $0 [options]
  --delays "MS ..."   --batch-delay-ms values of the sink (default "$delays")
  --count N           updates of each kind timed per run (default $count)
  --sink-arg ARG      extra argument for topicflow-sink (repeatable)
  --repeat R          runs per delay (default $repeat; medians of the per-run percentiles)
  --bin DIR           the built binaries (default build/release/bin)
  --out DIR           results (default build-bench/latency)
  --timeout S         bound on each run (default $run_timeout s)
  --quick             CI: 20 samples at the default delay, once
EOF
}
while (($#)); do
  case "$1" in
    --delays) delays="${2:?}"; shift 2 ;;
    --count) count="${2:?}"; shift 2 ;;
    --sink-arg) sink_args+=("${2?}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then delays="20"; count=20; repeat=1; fi
need_int --repeat "$repeat"; need_int --count "$count"; need_int --timeout "$run_timeout"
for d in $delays; do [[ "$d" =~ ^[0-9]+$ ]] || die "bad delay '$d'"; done
need_bins "$bin" topicflow-sink topicflow-bench-probe
bench_outdir

csv="$out/latency.csv"
echo "batch_delay_ms,rep,samples,completed_p50_ms,completed_p90_ms,completed_p99_ms,completed_max_ms,started_p50_ms,started_p99_ms,commit_p50_ms,target_ms,load1,ok" >"$csv"
{
  bench_meta "latency bench"
  echo "batch delays $delays ms; $count samples per run; repeat $repeat; sink args: ${sink_args[*]:-}"
} | tee "$out/meta.txt"

json_field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }

failures=0
run_one() {  # run_one DELAY REP
  local d=$1 rep=$2 tmp ok=1 load
  tmp=$(bench_tmpdir tflat) && tmpdirs+=("$tmp")
  load=$(load1)
  local e=(--frontend "ipc://$tmp/fe" --backend "ipc://$tmp/be" --sink "ipc://$tmp/sink" --events "ipc://$tmp/ev")
  "$bin/topicflow-sink" "${e[@]}" --db "$tmp/tf.db" --batch-delay-ms "$d" "${sink_args[@]}" 2>"$tmp/sink.log" &
  local sink=$!; pids+=($sink)
  local deadline=$(( $(now_ms) + 30000 ))
  until grep -q 'sink ready' "$tmp/sink.log" 2>/dev/null || (( $(now_ms) > deadline )); do sleep 0.05; done
  local result
  result=$(timeout -k 5 "$run_timeout" "$bin/topicflow-bench-probe" latency --sink "ipc://$tmp/sink" \
    --frontend "ipc://$tmp/fe" --db "$tmp/tf.db" --count "$count" --csv "$out/samples-$d-$rep.csv" 2>"$tmp/probe.err")
  (( $? == 0 )) || { ok=0; echo "delay $d: probe failed: $(tail -1 "$tmp/probe.err")" >&2; }
  kill -TERM "$sink" 2>/dev/null
  wait_bounded 15 "$sink" || { ok=0; echo "delay $d: the sink needed SIGKILL" >&2; }
  pids=()
  # The sink's own time to apply and commit each batch ("committed N updates (...) in X ms").
  local commit
  commit=$(grep -o 'committed [0-9]* updates ([^)]*) in [0-9.]* ms' "$tmp/sink.log" | awk '{ print $(NF - 1) }' |
    sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : 0) }')
  local samples; samples=$(json_field samples "$result")
  [[ "${samples:-0}" == "$count" ]] || ok=0
  local line
  line=$(printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s' "$d" "$rep" "${samples:-0}" \
    "$(json_field completed_p50_ms "$result")" "$(json_field completed_p90_ms "$result")" \
    "$(json_field completed_p99_ms "$result")" "$(json_field completed_max_ms "$result")" \
    "$(json_field started_p50_ms "$result")" "$(json_field started_p99_ms "$result")" "${commit:-0}" \
    $(( d + 5 )) "$load" "$ok")
  echo "$line" >>"$csv"
  awk -F, '{ printf "  batch delay %2d ms rep %d: %d samples; completed p50 %.2f p90 %.2f p99 %.2f max %.2f ms; started p50 %.2f p99 %.2f ms; commit %.2f ms (target %d ms, load %s)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, ($13 ? "" : " FAILED") }' <<<"$line"
  rm -rf "$tmp"
  ((ok))
}

for ((rep = 1; rep <= repeat; rep++)); do
  for d in $delays; do
    run_one "$d" "$rep" || failures=$((failures + 1))
  done
done
echo "load at end: $(uptime)" | tee -a "$out/meta.txt"

medians="$out/latency-medians.csv"
csv_medians 1 3-11 "$csv" >"$medians"
table="$out/latency.md"
awk -F, 'BEGIN { print "| --batch-delay-ms | target (ms) | completed p50 (ms) | p90 | p99 | max | started p50 | p99 | sink commit p50 (ms) | met |"
                 print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" }
  NR > 1 { printf "| %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n", $1, $11, $4, $5, $6, $7, $8, $9, $10,
             ($4 <= $11 && $6 <= $11 ? "yes" : "no") }' "$medians" >"$table"
echo
echo "Medians over $repeat run(s) of each run's percentiles ($count samples per run):"
echo
cat "$table"
echo
echo "raw: $csv; medians: $medians; table: $table"

ran=$(awk -F, 'NR > 1 && $13 == 1' "$csv" | wc -l)
if (( failures > 0 || ran == 0 )); then
  echo "FAILED: $failures run(s) failed" >&2
  exit 1
fi
echo "OK: $ran run(s)"
(( quick )) && echo "(quick mode: checks that it runs; numbers are not a benchmark)"
exit 0
