#!/usr/bin/env bash
# bench/scaling: issue 4's scaling target. With `sleep:20-100` the wall time should stay within
# 1.2x the ideal (topics x mean work / concurrency) from 8 to 500 concurrent tasks (worker
# processes x --concurrency): the sink is never the bottleneck.
#
# For each level WxC it runs topics = W x C x ROUNDS (so the ideal is ROUNDS x mean work, the
# same at every level: 40 x 60 ms = 2.4 s by default) through broker + sink + W workers
# (--concurrency C) + producer --wait on private ipc:// endpoints and a fresh database, and
# records
#   wall       producer start to exit (everything else up already, as bench/contention)
#   span       first registration to last completion, from the rows' created_at / updated_at
#   wall/ideal, span/ideal, completed/s (= topics / wall), and the CPU time of sink, broker and
#              workers over the run; sink CPU share = sink CPU / wall (1.0 = one core busy)
#   where the time goes, from the completion times: steady = the completion rate between the
#              10th and 90th percentile of completions against the ideal rate (concurrency /
#              mean work; 1.0 = no slot ever waits for a task); last wave = from the
#              (topics - concurrency)-th completion to the last (when every remaining task could
#              be running at once: at most one task, 100 ms, if none waits behind another);
#              start lag = time to the 10th percentile of completions minus its ideal (0.1 x ideal)
#              from the first registration: registration, first dispatch, workers' ramp-up
# Medians of R runs (levels interleaved within each repetition), a CSV of every run, a Markdown
# table and, with --chart, a gnuplot PNG.
#
#   bench/scaling/run.sh --repeat 3 --chart docs/scaling.png
#   bench/scaling/run.sh --quick        # CI: one small level once; checks it ran and lost nothing
#
# Exit status: 0 when every run completed every topic; 1 otherwise; 2 on bad flags.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build-bench/scaling"
levels="2x4 2x10 5x10 5x20 10x20 10x50"
rounds=40
handler="sleep:20-100"
repeat=3
run_timeout=120
chart=""
quick=0
sink_args=()

usage() {
  cat <<EOF
usage: $0 [options]
  --levels "WxC ..."  worker processes x concurrency per level (default "$levels")
  --rounds K          tasks per concurrent slot: topics = W x C x K (default $rounds)
  --handler SPEC      sleep:MIN-MAX (default $handler)
  --sink-arg ARG      extra argument for topicflow-sink (repeatable)
  --repeat R          runs per level (default $repeat; medians reported)
  --bin DIR           the built binaries (default build/release/bin)
  --out DIR           results (default build-bench/scaling)
  --timeout S         bound on each run (default $run_timeout s)
  --chart FILE.png    draw wall/ideal and throughput against concurrency (gnuplot)
  --quick             CI: level 2x4, 5 rounds of sleep:1-5, once
EOF
}
while (($#)); do
  case "$1" in
    --levels) levels="${2:?}"; shift 2 ;;
    --rounds) rounds="${2:?}"; shift 2 ;;
    --handler) handler="${2:?}"; shift 2 ;;
    --sink-arg) sink_args+=("${2?}"); shift 2 ;;
    --chart) chart="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then levels="2x4"; rounds=5; handler="sleep:1-5"; repeat=1; fi
need_int --repeat "$repeat"; need_int --rounds "$rounds"; need_int --timeout "$run_timeout"
[[ "$handler" =~ ^sleep:([0-9]+)-([0-9]+)$ ]] || die "--handler must be sleep:MIN-MAX (the ideal needs the mean work)"
mean_ms=$(awk -v a="${BASH_REMATCH[1]}" -v b="${BASH_REMATCH[2]}" 'BEGIN { print (a + b) / 2 }')
for l in $levels; do [[ "$l" =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "bad level '$l' (WORKERSxCONCURRENCY)"; done
need_bins "$bin" topicflow-broker topicflow-sink topicflow-worker topicflow-producer
command -v sqlite3 >/dev/null || die "the sqlite3 shell is needed to read the final state"
bench_outdir

csv="$out/scaling.csv"
echo "level,workers,concurrency,rep,topics,ideal_ms,wall_ms,span_ms,wall_ratio,span_ratio,completed,completed_per_s,sink_cpu_ms,broker_cpu_ms,workers_cpu_ms,sink_cpu_share,batches,steady,last_wave_ms,start_lag_ms,load1,ok" >"$csv"
{
  bench_meta "scaling bench"
  echo "levels $levels; rounds $rounds; handler $handler (mean $mean_ms ms); repeat $repeat; sink args: ${sink_args[*]:-}"
} | tee "$out/meta.txt"

failures=0
run_level() {  # run_level WxC rep
  local w=${1%x*} c=${1#*x} rep=$2 tmp
  local topics_n=$(( w * c * rounds ))
  local ideal; ideal=$(awk -v n="$topics_n" -v m="$mean_ms" -v c=$(( w * c )) 'BEGIN { printf "%.0f", n * m / c }')
  tmp=$(bench_tmpdir tfscale) && tmpdirs+=("$tmp")
  local topics="$out/topics-$topics_n.txt" load ok=1
  make_topics "$topics_n" "$topics"
  load=$(load1)
  tf_start "$tmp" "$w" "${sink_args[@]}" -- --handler "$handler" --concurrency "$c" || ok=0
  local c0=() c1=() p i
  for p in "${tf_pids[@]}"; do c0+=("$(cpu_ms "$p")"); done
  local t0 t1 rc
  t0=$(now_ms)
  timeout -k 5 "$run_timeout" "$bin/topicflow-producer" "${tf_endpoints[@]}" --wait --progress none "$topics" \
    >/dev/null 2>"$tmp/producer.log"
  rc=$?
  t1=$(now_ms)
  for p in "${tf_pids[@]}"; do c1+=("$(cpu_ms "$p")"); done
  (( rc == 0 )) || { ok=0; echo "$1: producer exited $rc: $(tail -1 "$tmp/producer.log")" >&2; }
  tf_stop || ok=0
  local completed span batches
  completed=$(sqlite3 "$tf_db" "SELECT count(*) FROM topics WHERE status='completed'" 2>/dev/null || echo 0)
  (( completed == topics_n )) || { ok=0; echo "$1: only $completed of $topics_n topics completed" >&2; }
  span=$(sqlite3 "$tf_db" "SELECT max(updated_at) - min(created_at) FROM topics" 2>/dev/null || echo 0)
  batches=$(grep -o 'sink stopped: [0-9]* updates in [0-9]* batches' "$tmp/sink.log" | awk '{ print $6 }' | tail -1)
  # Completion times at ranks 10 %, 90 %, topics - concurrency, and the last.
  local at=() r
  for r in $(( topics_n / 10 )) $(( topics_n * 9 / 10 )) $(( topics_n > w * c ? topics_n - w * c : 1 )) "$topics_n"; do
    at+=("$(sqlite3 "$tf_db" "SELECT updated_at FROM topics WHERE status='completed' ORDER BY updated_at LIMIT 1 OFFSET $(( r > 0 ? r - 1 : 0 ))" 2>/dev/null)")
  done
  local steady last_wave
  steady=$(awk -v n="$topics_n" -v m="$mean_ms" -v c=$(( w * c )) -v a="${at[0]:-0}" -v b="${at[1]:-0}" \
    'BEGIN { printf "%.3f", (b > a ? 0.8 * n * m / c / (b - a) : 0) }')
  last_wave=$(( ${at[3]:-0} - ${at[2]:-0} ))
  local t_first start_lag
  t_first=$(sqlite3 "$tf_db" "SELECT min(created_at) FROM topics" 2>/dev/null)
  start_lag=$(( ${at[0]:-0} - ${t_first:-0} - ideal / 10 ))
  local wall=$(( t1 - t0 )) scpu=$(( c1[1] - c0[1] )) bcpu=$(( c1[0] - c0[0] )) wcpu=0
  for ((i = 2; i < ${#c1[@]}; i++)); do wcpu=$(( wcpu + c1[i] - c0[i] )); done
  local line
  line=$(awk -v l="$1" -v w="$w" -v c="$c" -v rep="$rep" -v n="$topics_n" -v ideal="$ideal" -v wall="$wall" \
    -v span="${span:-0}" -v done="$completed" -v s="$scpu" -v b="$bcpu" -v k="$wcpu" -v bt="${batches:-0}" \
    -v st="$steady" -v lw="$last_wave" -v sl="$start_lag" -v load="$load" -v ok="$ok" 'BEGIN {
      printf "%s,%d,%d,%d,%d,%d,%d,%d,%.3f,%.3f,%d,%.1f,%d,%d,%d,%.3f,%d,%s,%d,%d,%s,%d\n", l, w, c, rep, n, ideal, wall, span,
        wall / ideal, span / ideal, done, (wall > 0 ? done * 1000 / wall : 0), s, b, k, (wall > 0 ? s / wall : 0), bt, st, lw, sl, load, ok }')
  echo "$line" >>"$csv"
  awk -F, '{ printf "  %-6s rep %d: %6d topics, wall %5d ms (%.2fx ideal), span %5d ms (%.2fx), %7.0f completed/s, start lag %d ms, steady %.2f, last wave %d ms, sink CPU %.0f%% of a core, %d batches (load %s)%s\n",
    $1, $4, $5, $7, $9, $8, $10, $12, $20, $18, $19, $16 * 100, $17, $21, ($22 ? "" : " FAILED") }' <<<"$line"
  rm -rf "$tmp"
  ((ok))
}

# Repetitions outermost, levels interleaved: a burst of load from other work lands on several
# levels rather than on all runs of one.
for ((rep = 1; rep <= repeat; rep++)); do
  for l in $levels; do
    run_level "$l" "$rep" || failures=$((failures + 1))
  done
done
echo "load at end: $(uptime)" | tee -a "$out/meta.txt"

medians="$out/scaling-medians.csv"
csv_medians 1-3 5-20 "$csv" >"$medians"
table="$out/scaling.md"
awk -F, 'NR == 1 { next } {
    # level,workers,concurrency,runs,topics,ideal,wall,span,wall_ratio,span_ratio,completed,cps,sink,broker,workers,share,batches,steady,last_wave,start_lag
    printf "| %d | %d × %d | %d | %.2f | %.2f | %.2f | **%.2f×** | %.2f× | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f %% | %.0f | %.0f |\n",
      $2 * $3, $2, $3, $5, $6 / 1000, $7 / 1000, $8 / 1000, $9, $10, $12, $5 * 1000 / $6, $20 / 1000, $18, $19 / 1000, $16 * 100, $15, $17 }
  BEGIN { print "| concurrent tasks | workers × concurrency | topics | ideal (s) | wall (s) | work span (s) | wall / ideal | span / ideal | completed/s | ideal/s | start lag (s) | steady rate / ideal | last wave (s) | sink CPU (share of a core) | workers CPU ms | batches |"
          print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" }' "$medians" >"$table"
echo
echo "Medians of $repeat run(s), handler $handler, $rounds tasks per slot:"
echo
cat "$table"
echo
echo "raw: $csv; medians: $medians; table: $table"

if [[ -n "$chart" ]]; then
  if command -v gnuplot >/dev/null; then
    gnuplot -e "medians='$medians'; runs='$csv'; output='$chart'; mean_ms=$mean_ms; subtitle='$handler, $rounds tasks per slot (ideal $(awk -v r="$rounds" -v m="$mean_ms" 'BEGIN { print r * m / 1000 }') s), medians of $repeat runs'" \
      "$here/chart.gp" && echo "chart: $chart"
  else
    echo "run.sh: gnuplot not found; no chart" >&2
  fi
fi

lost=$(awk -F, 'NR > 1 { s += $5 - $11 } END { print s + 0 }' "$csv")
ran=$(awk -F, 'NR > 1 && $22 == 1' "$csv" | wc -l)
(( failures > 0 || ran == 0 || lost > 0 )) && why="$failures run(s) failed, $lost topic(s) not completed"
bench_finish "${why:-}" "$ran run(s), every topic completed"
