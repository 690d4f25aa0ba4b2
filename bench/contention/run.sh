#!/usr/bin/env bash
# bench/contention: the comparison that matters (issue 4). The same topics and handler run two
# ways for each worker count, in one invocation:
#   direct     N topicflow-direct-worker processes, each writing its own status rows, one
#              transaction per status change, retry loop 5 x 0.1 s doubling, no jitter
#   topicflow  broker + sink (the only writer, batched) + N topicflow-worker + producer --wait
# and reports wall time, "database is locked" errors, updates that gave up, rows left not
# completed, and status updates/s: medians of R repetitions, as a Markdown table, plus a CSV of
# every run and (with gnuplot) a chart.
#
#   bench/contention/run.sh                      # full: N = 8 58 200, 288 topics, R = 3
#   bench/contention/run.sh --quick              # CI: N = 8, 100 topics, R = 1, checks it runs
#   bench/contention/run.sh --repeat 5 --chart docs/contention.png
#   bench/contention/run.sh --end-to-end --workers 58 --repeat 5   # the seed's scenario
#
# --end-to-end times what a user waits for, process start included for both designs: direct
# from seeding the rows (the seed app's registration) and starting its N processes (no common
# start instant) to the last one's exit; topicflow as one `topicflow run --workers N` from its
# start to its exit (sink, broker and workers started, the file submitted, everything stopped).
#
# Exit status: 0 when every run ran and topicflow left no row unfinished; 1 otherwise; 2 on
# bad flags. Direct-design losses are results, not failures.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build-bench/bin"
out="$repo/build-bench/contention"
workers="8 58 200"
repeat=3
topics_n=""
topics_file=""
handler="sleep:20-100"
busy_timeout_ms=5
claim="shard"
synchronous="normal"
run_timeout=120
chart=""
quick=0
keep=0
designs="direct topicflow"
end_to_end=0

usage() {
  cat <<EOF
usage: $0 [options]
  --quick              N=8, 100 topics, 1 repetition: only checks that both designs run
  --workers "N ..."    worker counts (default "$workers")
  --repeat R           repetitions of each configuration (default $repeat; medians reported)
  --topics K           generate K topics (default: examples/topics.txt if present, else 288)
  --topics-file FILE   use this text file of topics
  --handler SPEC       handler of both designs (default $handler)
  --busy-timeout-ms MS direct workers' sqlite3_busy_timeout (default $busy_timeout_ms)
  --claim shard|queue  how direct workers pick their topics (default $claim)
  --synchronous MODE   direct workers' PRAGMA synchronous: normal (as the sink, default) or full
  --bin DIR            directory of the built binaries (default build-bench/bin)
  --out DIR            results directory (default build-bench/contention)
  --timeout S          bound on each run (default $run_timeout s)
  --chart FILE.png     also draw wall time and updates/s against N (needs gnuplot)
  --design D           run only this design (direct or topicflow; default both)
  --keep               keep each topicflow run's database and logs in OUT/runs/topicflow-N-REP
  --end-to-end         the seed's scenario: process start included for both designs (see the top)
EOF
}

while (($#)); do
  case "$1" in
    --workers) workers="${2:?}"; shift 2 ;;
    --topics) topics_n="${2:?}"; shift 2 ;;
    --topics-file) topics_file="${2:?}"; shift 2 ;;
    --handler) handler="${2:?}"; shift 2 ;;
    --busy-timeout-ms) busy_timeout_ms="${2:?}"; shift 2 ;;
    --claim) claim="${2:?}"; shift 2 ;;
    --synchronous) synchronous="${2:?}"; shift 2 ;;
    --chart) chart="${2:?}"; shift 2 ;;
    --design) designs="${2:?}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --end-to-end) end_to_end=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then workers="8"; repeat=1; topics_n=100; fi
need_int --repeat "$repeat"; need_int --timeout "$run_timeout"; need_int --workers $workers
[[ -z "$topics_n" ]] || need_int --topics "$topics_n"
need_bins "$bin" topicflow-direct-worker topicflow-broker topicflow-sink topicflow-worker topicflow-producer topicflow
command -v sqlite3 >/dev/null || die "the sqlite3 shell is needed to read the final state"
bench_outdir

# Sum / max of a numeric field over JSON lines (flat objects, as the direct workers print).
json_agg() {  # json_agg sum|max FIELD FILES...
  local op=$1 field=$2; shift 2
  awk -v f="\"$field\":" -v op="$op" '
    { i = index($0, f); if (i == 0) next
      v = substr($0, i + length(f)) + 0; n++
      if (op == "sum") r += v; else if (n == 1 || v > r) r = v }
    END { printf "%.0f", r + 0 }' "$@"
}

# --- topics --------------------------------------------------------------------------------------
if [[ -n "$topics_file" ]]; then
  [[ -r "$topics_file" ]] || die "cannot read $topics_file"
  topics="$topics_file"
elif [[ -z "$topics_n" && -r "$repo/examples/topics.txt" ]]; then
  topics="$repo/examples/topics.txt"
else
  topics="$out/topics-${topics_n:-288}.txt"
  awk -v n="${topics_n:-288}" 'BEGIN { for (i = 1; i <= n; i++) printf "topic %05d: a title to process\n", i }' >"$topics"
fi
topic_count=$(grep -c -v '^[[:space:]]*$' "$topics")

csv="$out/contention.csv"
echo "design,workers,rep,topics,handler,busy_timeout_ms,claim,synchronous,wall_ms,span_ms,locked_errors,retries,gave_up,stuck,completed,status_writes,transactions,completed_per_s,writes_per_s,load1,ok,max_per_worker" >"$csv"

{
  bench_meta "contention bench"
  echo "topics $topic_count ($topics); handler $handler; workers $workers; repeat $repeat; direct busy_timeout ${busy_timeout_ms} ms, claim $claim, synchronous $synchronous$( ((end_to_end)) && echo "; end to end (process start included)")"
} | tee "$out/meta.txt"

failures=0

# --- (a) direct: every worker process writes its own rows ---------------------------------------
run_direct() {
  local n=$1 rep=$2 tmp
  tmp=$(bench_tmpdir tfc-direct) && tmpdirs+=("$tmp")
  local db="$tmp/direct.db" load t0; load=$(load1)
  t0=$(now_ms)
  if ! "$bin/topicflow-direct-worker" --db "$db" --seed "$topics" >"$tmp/seed.json" 2>"$tmp/seed.err"; then
    echo "direct N=$n: seeding failed: $(cat "$tmp/seed.err")" >&2
    return 1
  fi
  # Every process opens the database, then all start at the same instant (their pool starting).
  # (end to end: each starts when it is up, and the wall time counts from before the seeding)
  local start=$(( $(now_ms) + 1000 + 10 * n )) i wpids=() start_at
  start_at=$start
  if ((end_to_end)); then start=$t0; start_at=0; fi
  for ((i = 0; i < n; i++)); do
    "$bin/topicflow-direct-worker" --db "$db" --index "$i" --count "$n" --claim "$claim" \
      --handler "$handler" --busy-timeout-ms "$busy_timeout_ms" --synchronous "$synchronous" --start-at-ms "$start_at" \
      --deadline-ms $(( run_timeout * 1000 )) >"$tmp/w$i.json" 2>"$tmp/w$i.err" &
    wpids+=($!); pids+=($!)
  done
  local ok=1
  wait_bounded $(( run_timeout + 30 )) "${wpids[@]}" || { ok=0; echo "direct N=$n: workers timed out" >&2; }
  local lines; lines=$(cat "$tmp"/w*.json | grep -c '"worker"')
  if (( lines != n )); then
    ok=0
    echo "direct N=$n: only $lines of $n workers reported; first error: $(cat "$tmp"/w*.err | head -1)" >&2
  fi
  local end late locked retries gave_up writes
  end=$(json_agg max end_ms "$tmp"/w*.json)
  late=$(( $(json_agg max ready_ms "$tmp"/w*.json) - start ))
  (( late > 0 && !end_to_end )) && echo "direct N=$n: the last worker was ready ${late} ms after the start; counted in wall time" >&2
  locked=$(json_agg sum busy_errors "$tmp"/w*.json)
  retries=$(json_agg sum retries "$tmp"/w*.json)
  gave_up=$(json_agg sum gave_up "$tmp"/w*.json)
  writes=$(json_agg sum writes_ok "$tmp"/w*.json)
  local completed stuck span
  completed=$(sqlite3 "$db" "SELECT count(*) FROM topics WHERE status='completed'")
  stuck=$(sqlite3 "$db" "SELECT count(*) FROM topics WHERE status<>'completed'")
  span=$(( $(sqlite3 "$db" "SELECT max(updated_at) FROM topics") - start ))
  local wall=$(( end - start ))
  local maxw
  maxw=$(sqlite3 "$db" "SELECT max(c) FROM (SELECT count(*) AS c FROM topics WHERE status='completed' GROUP BY worker)")
  # Each committed status change was one transaction.
  record direct "$n" "$rep" "$wall" "$span" "$locked" "$retries" "$gave_up" "$stuck" "$completed" "$writes" "$writes" "$load" "$ok" "${maxw:-0}"
  pids=()  # all reaped: never signal a pid that may have been reused
  rm -rf "$tmp"
  ((ok))
}

# --- (b) topicflow: workers report over ZeroMQ, the sink writes in batches (--end-to-end: one run) -
run_topicflow() {
  local n=$1 rep=$2 tmp
  tmp=$(bench_tmpdir tfc) && tmpdirs+=("$tmp")
  local load ok=1 db log t0 t1 rc; load=$(load1)
  if ((end_to_end)); then
    # (b') one `topicflow run`, process start included; the sink logs into run's stderr
    db="$tmp/topicflow.db" log="$tmp/run.log"
    t0=$(now_ms)
    timeout -k 5 "$run_timeout" "$bin/topicflow" run --db "$db" --workers "$n" --handler "$handler" \
      --progress none --log-level info "$topics" >"$tmp/run.out" 2>"$log"
    rc=$?
    t1=$(now_ms)
    (( rc == 0 )) || { ok=0; echo "topicflow run N=$n: exited $rc: $(tail -1 "$log")" >&2; }
  else
    # Ready when the sink has opened its database, the broker streams and every worker started.
    tf_start "$tmp" "$n" -- --handler "$handler" || { ok=0; echo "topicflow N=$n: not every worker started" >&2; }
    db=$tf_db log="$tmp/sink.log"
    t0=$(now_ms)
    timeout -k 5 "$run_timeout" "$bin/topicflow-producer" "${tf_endpoints[@]}" --wait --progress none "$topics" \
      >"$tmp/producer.out" 2>"$tmp/producer.log"
    rc=$?
    t1=$(now_ms)
    (( rc == 0 )) || { ok=0; echo "topicflow N=$n: producer exited $rc: $(tail -1 "$tmp/producer.log")" >&2; }
    # Workers first (nothing in flight), then the sink commits what it holds and stops.
    tf_stop 15 || { ok=0; echo "topicflow N=$n: sink/broker needed SIGKILL" >&2; }
  fi
  local stopped updates batches locked gave_up
  stopped=$(grep -o 'sink stopped: [0-9]* updates in [0-9]* batches, [0-9]* busy retries' "$log" | tail -1)
  read -r updates batches locked <<<"$(sed -E 's/[^0-9]+/ /g' <<<"$stopped")"
  [[ -n "$stopped" ]] || { ok=0; echo "topicflow N=$n: the sink did not report its totals" >&2; }
  # The sink never drops an update on SQLITE_BUSY; what it could not commit at shutdown is logged.
  gave_up=$(grep -o '[0-9]* updates not committed' "$log" | awk '{ s += $1 } END { print s + 0 }')
  local completed stuck span
  completed=$(sqlite3 "$db" "SELECT count(*) FROM topics WHERE status='completed'" 2>/dev/null || echo 0)
  stuck=$(( topic_count - completed ))
  span=$(sqlite3 "$db" "SELECT max(updated_at) - min(created_at) FROM topics" 2>/dev/null || echo 0)
  # Tasks per worker: the `worker` column of a completed row names the worker that completed it.
  local maxw
  maxw=$(sqlite3 "$db" "SELECT max(c) FROM (SELECT count(*) AS c FROM topics WHERE status='completed' GROUP BY worker)" 2>/dev/null)
  record topicflow "$n" "$rep" $(( t1 - t0 )) "${span:-0}" "${locked:-0}" "${locked:-0}" "$gave_up" "$stuck" \
    "$completed" "${updates:-0}" "${batches:-0}" "$load" "$ok" "${maxw:-0}"
  if ((keep)); then
    mkdir -p "$out/runs" && rm -rf "$out/runs/topicflow-$n-$rep" && cp -r "$tmp" "$out/runs/topicflow-$n-$rep"
    rm -f "$out/runs/topicflow-$n-$rep"/{fe,be,sink,ev}
  fi
  rm -rf "$tmp"
  ((ok))
}

record() {  # design n rep wall span locked retries gave_up stuck completed writes transactions load ok max_per_worker
  local design=$1 n=$2 rep=$3 wall=$4 span=$5 locked=$6 retries=$7 gave_up=$8 stuck=$9 completed=${10}
  local writes=${11} tx=${12} load=${13} ok=${14} maxw=${15}
  local cps wps
  cps=$(awk -v c="$completed" -v w="$wall" 'BEGIN { printf "%.1f", (w > 0 ? c * 1000 / w : 0) }')
  wps=$(awk -v c="$writes" -v w="$wall" 'BEGIN { printf "%.1f", (w > 0 ? c * 1000 / w : 0) }')
  echo "$design,$n,$rep,$topic_count,$handler,$busy_timeout_ms,$claim,$synchronous,$wall,$span,$locked,$retries,$gave_up,$stuck,$completed,$writes,$tx,$cps,$wps,$load,$ok,$maxw" >>"$csv"
  printf '  %-9s N=%-4s rep %d: wall %6.2f s (span %6.2f s), locked %5d, gave up %3d, stuck %3d, %7.1f completed/s, %7.1f writes/s in %d transactions, max %d per worker (load %s)\n' \
    "$design" "$n" "$rep" "$(awk -v w="$wall" 'BEGIN { print w / 1000 }')" "$(awk -v w="$span" 'BEGIN { print w / 1000 }')" "$locked" "$gave_up" "$stuck" "$cps" "$wps" "$tx" "$maxw" "$load"
}

# Repetitions outermost and the designs interleaved, so a burst of load from other work on the
# machine lands on both designs rather than on one.
for ((rep = 1; rep <= repeat; rep++)); do
  for n in $workers; do
    if [[ " $designs " == *" direct "* ]]; then run_direct "$n" "$rep" || failures=$((failures + 1)); fi
    if [[ " $designs " == *" topicflow "* ]]; then run_topicflow "$n" "$rep" || failures=$((failures + 1)); fi
  done
done
echo "load at end: $(uptime)" | tee -a "$out/meta.txt"

# --- medians and the table -----------------------------------------------------------------------
medians="$out/contention-medians.csv"
csv_medians 1,2 9-19,22 "$csv" >"$medians"

table="$out/contention.md"
awk -F, '
  NR == 1 { next }
  { d = $1; n = $2; wall[d, n] = $4; span[d, n] = $5; locked[d, n] = $6; gave[d, n] = $8; stuck[d, n] = $9
    tx[d, n] = $12; cps[d, n] = $13; wps[d, n] = $14; runs[d, n] = $3; maxw[d, n] = $15
    if (!(n in seen)) { seen[n] = 1; ns[++k] = n } }
  END {
    print "| workers | design | wall (s) | work span (s) | \"database is locked\" | gave up | stuck rows | completed/s | status writes/s | transactions | max tasks per worker | completed/s vs direct | wall vs direct |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= k; i++) {
      n = ns[i]
      for (j = 1; j <= 2; j++) {
        d = j == 1 ? "direct" : "topicflow"
        if (!((d, n) in wall)) continue
        r1 = "–"; r2 = "–"
        if (d == "topicflow" && (("direct", n) in wall) && cps["direct", n] > 0 && wall["direct", n] > 0) {
          r1 = sprintf("%.2f×", cps[d, n] / cps["direct", n]); r2 = sprintf("%.2f×", wall[d, n] / wall["direct", n])
        }
        printf "| %s | %s | %.2f | %.2f | %g | %g | %g | %.0f | %.0f | %g | %g | %s | %s |\n", n, d, wall[d, n] / 1000, span[d, n] / 1000,
          locked[d, n], gave[d, n], stuck[d, n], cps[d, n], wps[d, n], tx[d, n], maxw[d, n], r1, r2
      }
    }
  }' "$medians" >"$table"
echo
echo "Medians of $repeat run(s), $topic_count topics, handler $handler:"
echo
cat "$table"
echo
echo "raw: $csv; medians: $medians; table: $table"

if [[ -n "$chart" ]]; then
  if command -v gnuplot >/dev/null; then
    ideal=""
    [[ "$handler" =~ ^sleep:([0-9]+)-([0-9]+)$ ]] &&
      ideal="topics=$topic_count; min_ms=${BASH_REMATCH[1]}; max_ms=${BASH_REMATCH[2]};"
    gnuplot -e "medians='$medians'; output='$chart'; $ideal subtitle='$topic_count topics, $handler, medians of $repeat runs'" \
      "$here/chart.gp" && echo "chart: $chart"
  else
    echo "run.sh: gnuplot not found; no chart" >&2
  fi
fi

# --- verdict: both designs ran; topicflow finished every topic --------------------------------
tf_stuck=$(awk -F, 'NR > 1 && $1 == "topicflow" { s += $14 } END { print s + 0 }' "$csv")
ran_direct=$(awk -F, 'NR > 1 && $1 == "direct" && $21 == 1' "$csv" | wc -l)
ran_tf=$(awk -F, 'NR > 1 && $1 == "topicflow" && $21 == 1' "$csv" | wc -l)
[[ " $designs " == *" direct "* ]] || ran_direct=-1
[[ " $designs " == *" topicflow "* ]] || ran_tf=-1
why=""
if (( failures > 0 || ran_direct == 0 || ran_tf == 0 || tf_stuck > 0 )); then
  why="$failures run(s) failed; direct ran $ran_direct, topicflow ran $ran_tf; topicflow left $tf_stuck row(s) unfinished"
fi
bench_finish "$why" "both designs ran ($ran_direct + $ran_tf runs); topicflow left 0 rows unfinished"
