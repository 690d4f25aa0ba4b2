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
#   bench/latency/run.sh --rt --out build-bench/latency-rt  # sink and probe at real-time priority
#   bench/latency/run.sh --quick                          # CI: 20 samples, once
#
# Each run also records the machine's CPU pressure over the run (/proc/pressure/cpu, "some":
# the share of time at least one runnable task waited for a CPU), so a tail caused by other work
# on the machine can be told from one caused by the sink. --rt runs the sink and the probe under
# `chrt -f 10` (needs CAP_SYS_NICE): what the latency is when the machine's other load cannot
# delay them.
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
rt=0
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
  --rt                run the sink and the probe at real-time priority (chrt -f 10)
  --quick             CI: 20 samples at the default delay, once
EOF
}
while (($#)); do
  case "$1" in
    --delays) delays="${2:?}"; shift 2 ;;
    --count) count="${2:?}"; shift 2 ;;
    --sink-arg) sink_args+=("${2?}"); shift 2 ;;
    --rt) rt=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then delays="20"; count=20; repeat=1; fi
need_int --repeat "$repeat"; need_int --count "$count"; need_int --timeout "$run_timeout"
for d in $delays; do [[ "$d" =~ ^[0-9]+$ ]] || die "bad delay '$d'"; done
need_bins "$bin" topicflow-sink topicflow-bench-probe
prio=()
if ((rt)); then
  prio=(chrt -f 10)
  chrt -f 10 true 2>/dev/null || die "--rt: chrt -f 10 is not permitted here (needs CAP_SYS_NICE)"
fi
bench_outdir

csv="$out/latency.csv"
echo "batch_delay_ms,rep,samples,completed_p50_ms,completed_p90_ms,completed_p99_ms,completed_max_ms,started_p50_ms,started_p99_ms,commit_p50_ms,target_ms,cpu_pressure_pct,load1,ok" >"$csv"
{
  bench_meta "latency bench"
  echo "batch delays $delays ms; $count samples per run; repeat $repeat; real-time priority: $( ((rt)) && echo yes || echo no); sink args: ${sink_args[*]:-}"
} | tee "$out/meta.txt"

json_field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
# Microseconds some runnable task waited for a CPU since boot (0 without PSI).
cpu_stall_us() { awk '/^some/ { sub("total=", "", $5); print $5; exit }' /proc/pressure/cpu 2>/dev/null || echo 0; }

failures=0
run_one() {  # run_one DELAY REP
  local d=$1 rep=$2 tmp ok=1 load
  tmp=$(bench_tmpdir tflat) && tmpdirs+=("$tmp")
  load=$(load1)
  local e=(--frontend "ipc://$tmp/fe" --backend "ipc://$tmp/be" --sink "ipc://$tmp/sink" --events "ipc://$tmp/ev")
  "${prio[@]}" "$bin/topicflow-sink" "${e[@]}" --db "$tmp/tf.db" --batch-delay-ms "$d" "${sink_args[@]}" 2>"$tmp/sink.log" &
  local sink=$!; pids+=($sink)
  local deadline=$(( $(now_ms) + 30000 ))
  until grep -q 'sink ready' "$tmp/sink.log" 2>/dev/null || (( $(now_ms) > deadline )); do sleep 0.05; done
  local result s0 t0 pressure
  s0=$(cpu_stall_us); t0=$(now_ms)
  result=$(timeout -k 5 "$run_timeout" "${prio[@]}" "$bin/topicflow-bench-probe" latency --sink "ipc://$tmp/sink" \
    --frontend "ipc://$tmp/fe" --db "$tmp/tf.db" --count "$count" --csv "$out/samples-$d-$rep.csv" 2>"$tmp/probe.err")
  (( $? == 0 )) || { ok=0; echo "delay $d: probe failed: $(tail -1 "$tmp/probe.err")" >&2; }
  pressure=$(awk -v a="$s0" -v b="$(cpu_stall_us)" -v ms=$(( $(now_ms) - t0 )) 'BEGIN { printf "%.0f", (ms > 0 ? (b - a) / 10 / ms : 0) }')
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
  line=$(printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s' "$d" "$rep" "${samples:-0}" \
    "$(json_field completed_p50_ms "$result")" "$(json_field completed_p90_ms "$result")" \
    "$(json_field completed_p99_ms "$result")" "$(json_field completed_max_ms "$result")" \
    "$(json_field started_p50_ms "$result")" "$(json_field started_p99_ms "$result")" "${commit:-0}" \
    $(( d + 5 )) "$pressure" "$load" "$ok")
  echo "$line" >>"$csv"
  awk -F, '{ printf "  batch delay %2d ms rep %d: %d samples; completed p50 %.2f p90 %.2f p99 %.2f max %.2f ms; started p50 %.2f p99 %.2f ms; commit %.2f ms (target %d ms; CPU pressure %d %%, load %s)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, ($14 ? "" : " FAILED") }' <<<"$line"
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
csv_medians 1 3-12 "$csv" >"$medians"
table="$out/latency.md"
awk -F, 'BEGIN { print "| --batch-delay-ms | target (ms) | completed p50 (ms) | p90 | p99 | max | started p50 | p99 | sink commit p50 (ms) | CPU pressure | met |"
                 print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" }
  NR > 1 { printf "| %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %d %% | %s |\n", $1, $11, $4, $5, $6, $7, $8, $9, $10, $12,
             ($4 <= $11 && $6 <= $11 ? "yes" : "no") }' "$medians" >"$table"
# Every sample of every run together, per delay and kind.
{
  echo "batch_delay_ms,kind,samples,p50_ms,p99_ms,p999_ms,max_ms,over_target"
  for d in $delays; do
    for kind in completed started; do
      cat "$out"/samples-"$d"-*.csv | awk -F, -v k="$kind" '$1 == k { print $2 }' | sort -n |
        awk -v d="$d" -v k="$kind" -v t=$(( (d + 5) * 1000 )) '{ a[NR] = $1; if ($1 > t) over++ }
          function at(p,   r) { r = int(p * NR + 0.999999); return a[r < 1 ? 1 : r] / 1000 }
          END { if (NR) printf "%s,%s,%d,%.2f,%.2f,%.2f,%.2f,%d\n", d, k, NR, at(0.5), at(0.99), at(0.999), a[NR] / 1000, over + 0 }'
    done
  done
} >"$out/latency-pooled.csv"
echo
echo "Medians over $repeat run(s) of each run's percentiles ($count samples per run):"
echo
cat "$table"
echo
echo "All samples together:"
column -t -s, "$out/latency-pooled.csv" 2>/dev/null || cat "$out/latency-pooled.csv"
echo
echo "raw: $csv; medians: $medians; table: $table"

ran=$(awk -F, 'NR > 1 && $14 == 1' "$csv" | wc -l)
(( failures > 0 || ran == 0 )) && why="$failures run(s) failed"
bench_finish "${why:-}" "$ran run(s)"
