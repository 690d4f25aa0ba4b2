#!/usr/bin/env bash
# bench/memory: issue 4's memory target: sink RSS < 64 MB and producer RSS independent of the
# input size for a 1,000,000-topic job; broker RSS bounded by its HWMs.
#
# Part 1, pipeline: for each size K (default 100,000 and 1,000,000 `noop` topics) broker + sink +
# W workers + producer --wait on private ipc:// endpoints and a fresh database; peak RSS (VmHWM)
# of every process (the producer's from /usr/bin/time), the sink's RSS sampled every 0.5 s (to
# see whether it grows during the job), the database size, and a check that every topic is
# `completed`.
# Part 2, broker under backpressure: a broker alone (no worker connected, so nothing leaves it)
# and topicflow-bench-probe flood pushing N task messages of B bytes into its frontend until the
# HWMs push back (a send blocked for 2 s); the broker's peak RSS before and after, for several
# N and --hwm, shows whether its memory is bounded by the HWM and not by what is offered.
#
#   bench/memory/run.sh --repeat 3
#   bench/memory/run.sh --quick          # CI: 2,000 topics and a small flood, once
#
# Writes pipeline.csv, broker.csv, their medians, memory.md and meta.txt to --out.
# Exit status: 0 when every run completed every topic (and every flood ran), 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build-bench/memory"
sizes="100000 1000000"
workers=2
repeat=3
run_timeout=600
quick=0
# broker floods: HWM:MESSAGES:PAYLOAD_BYTES
floods="1000:10000:4096 1000:100000:4096 100:100000:4096 1000:20000:65536"

usage() {
  cat <<EOF
usage: $0 [options]
  --sizes "K ..."     topics per pipeline run (default "$sizes")
  --workers W         worker processes (default $workers, --concurrency 1, noop)
  --floods "H:N:B ..." broker runs: --hwm H, N messages of B payload bytes offered
                      (default "$floods"; "" skips part 2)
  --repeat R          runs of each (default $repeat; medians reported)
  --bin DIR           the built binaries (default build/release/bin)
  --out DIR           results (default build-bench/memory)
  --timeout S         bound on each run (default $run_timeout s)
  --quick             CI: 2,000 topics and one flood of 3,000 messages, once
EOF
}
while (($#)); do
  case "$1" in
    --sizes) sizes="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --floods) floods="${2?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then sizes="2000"; floods="1000:3000:4096"; repeat=1; fi
need_int --repeat "$repeat"; need_int --workers "$workers"; need_int --timeout "$run_timeout"
need_int --sizes $sizes
for f in $floods; do [[ "$f" =~ ^[0-9]+:[1-9][0-9]*:[0-9]+$ ]] || die "bad flood '$f' (HWM:MESSAGES:BYTES)"; done
need_bins "$bin" topicflow-broker topicflow-sink topicflow-worker topicflow-producer topicflow-bench-probe
command -v sqlite3 >/dev/null || die "the sqlite3 shell is needed to read the final state"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed for the producer's peak RSS (Debian package time)"
bench_outdir

{
  bench_meta "memory bench"
  echo "sizes $sizes; workers $workers; floods $floods; repeat $repeat"
} | tee "$out/meta.txt"

pcsv="$out/pipeline.csv"
echo "topics,rep,wall_ms,completed,sink_rss_kb,sink_rss_first_kb,sink_rss_last_kb,producer_rss_kb,broker_rss_kb,worker_rss_kb,db_kb,load1,ok" >"$pcsv"
bcsv="$out/broker.csv"
echo "hwm,offered,payload_bytes,rep,accepted,broker_rss_idle_kb,broker_rss_peak_kb,broker_growth_kb,bound_kb,load1,ok" >"$bcsv"
failures=0

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }  # KiB -> MiB

run_pipeline() {  # run_pipeline K REP
  local k=$1 rep=$2 tmp ok=1 load
  tmp=$(bench_tmpdir tfmem) && tmpdirs+=("$tmp")
  local topics="$out/topics-$k.txt"
  make_topics "$k" "$topics"
  load=$(load1)
  tf_start "$tmp" "$workers" -- --handler noop --concurrency 1 || ok=0
  local sink=${tf_pids[1]}
  # The sink's resident set every 0.5 s while the job runs.
  ( while kill -0 "$sink" 2>/dev/null; do awk '/^VmRSS:/ { print $2 }' "/proc/$sink/status" 2>/dev/null; sleep 0.5; done ) \
    >"$tmp/sink-rss.txt" &
  local sampler=$!
  local t0 t1 rc
  t0=$(now_ms)
  timeout -k 5 "$run_timeout" /usr/bin/time -o "$tmp/producer.time" -f '%M' \
    "$bin/topicflow-producer" "${tf_endpoints[@]}" --wait --progress none "$topics" >/dev/null 2>"$tmp/producer.log"
  rc=$?
  t1=$(now_ms)
  (( rc == 0 )) || { ok=0; echo "$k topics: producer exited $rc: $(tail -1 "$tmp/producer.log")" >&2; }
  local srss brss wrss=0 p r
  srss=$(rss_kb "$sink"); brss=$(rss_kb "${tf_pids[0]}")
  for p in "${tf_pids[@]:2}"; do r=$(rss_kb "$p"); (( r > wrss )) && wrss=$r; done
  tf_stop || ok=0
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  local completed db_kb first last
  completed=$(sqlite3 "$tf_db" "SELECT count(*) FROM topics WHERE status='completed'" 2>/dev/null || echo 0)
  (( completed == k )) || { ok=0; echo "$k topics: only $completed completed" >&2; }
  db_kb=$(du -k "$tf_db" | cut -f1)
  first=$(head -1 "$tmp/sink-rss.txt"); last=$(tail -1 "$tmp/sink-rss.txt")
  local prss; prss=$(tail -1 "$tmp/producer.time")
  echo "$k,$rep,$(( t1 - t0 )),$completed,$srss,${first:-0},${last:-0},${prss:-0},$brss,$wrss,$db_kb,$load,$ok" >>"$pcsv"
  printf '  %8d topics rep %d: %6d ms; peak RSS MiB: sink %.1f (sampled %.1f at start, %.1f at end), producer %.1f, broker %.1f, worker %.1f; DB %.0f MiB (load %s)%s\n' \
    "$k" "$rep" $(( t1 - t0 )) "$(mib $srss)" "$(mib ${first:-0})" "$(mib ${last:-0})" \
    "$(mib ${prss:-0})" "$(mib $brss)" "$(mib $wrss)" "$(mib $db_kb)" \
    "$load" "$( ((ok)) || echo ' FAILED')"
  rm -rf "$tmp"
  ((ok))
}

run_flood() {  # run_flood HWM:N:B REP
  local hwm=${1%%:*} rest=${1#*:}; local n=${rest%%:*} bytes=${rest#*:} rep=$2 tmp ok=1 load
  tmp=$(bench_tmpdir tfflood) && tmpdirs+=("$tmp")
  load=$(load1)
  "$bin/topicflow-broker" --frontend "ipc://$tmp/fe" --backend "ipc://$tmp/be" --sink "ipc://$tmp/sink" \
    --events "ipc://$tmp/ev" --hwm "$hwm" 2>"$tmp/broker.log" &
  local broker=$!; pids+=($broker)
  local deadline=$(( $(now_ms) + 30000 ))
  until grep -q 'streaming' "$tmp/broker.log" 2>/dev/null || (( $(now_ms) > deadline )); do sleep 0.05; done
  sleep 0.2
  local idle; idle=$(rss_kb "$broker")
  local result
  result=$(timeout -k 5 "$run_timeout" "$bin/topicflow-bench-probe" flood --frontend "ipc://$tmp/fe" --count "$n" \
    --payload-bytes "$bytes" --send-timeout-ms 2000 2>"$tmp/flood.err") || { ok=0; echo "flood failed: $(tail -1 "$tmp/flood.err")" >&2; }
  local peak; peak=$(rss_kb "$broker")
  kill -TERM "$broker" 2>/dev/null
  wait_bounded 15 "$broker" || { ok=0; echo "the broker needed SIGKILL" >&2; }
  pids=()
  local accepted; accepted=$(grep -o '"sent":[0-9]*' <<<"$result" | cut -d: -f2)
  [[ -n "$accepted" ]] || ok=0
  # The payload the HWM lets the broker hold: --hwm messages in its frontend queue plus the one
  # it holds for the backend (+100 bytes of envelope each). ZeroMQ's receive side keeps small
  # messages inside its 8 KiB decoder buffers, so messages under 8 KiB cost up to 8 KiB each.
  local bound=$(( (hwm + 1) * (bytes + 100) / 1024 ))
  echo "$hwm,$n,$bytes,$rep,${accepted:-0},$idle,$peak,$(( peak - idle )),$bound,$load,$ok" >>"$bcsv"
  printf '  broker --hwm %5d, %7d x %6d B offered: %7d accepted before backpressure; RSS %.1f -> %.1f MiB (+%.1f; (HWM + 1) x payload = %.1f MiB) (load %s)%s\n' \
    "$hwm" "$n" "$bytes" "${accepted:-0}" "$(mib $idle)" "$(mib $peak)" \
    "$(mib $(( peak - idle )))" "$(mib $bound)" "$load" "$( ((ok)) || echo ' FAILED')"
  rm -rf "$tmp"
  ((ok))
}

for ((rep = 1; rep <= repeat; rep++)); do
  for k in $sizes; do run_pipeline "$k" "$rep" || failures=$((failures + 1)); done
  for f in $floods; do run_flood "$f" "$rep" || failures=$((failures + 1)); done
done
echo "load at end: $(uptime)" | tee -a "$out/meta.txt"

csv_medians 1 3-11 "$pcsv" >"$out/pipeline-medians.csv"
csv_medians 1-3 5-9 "$bcsv" >"$out/broker-medians.csv"
table="$out/memory.md"
{
  echo "| topics | wall (s) | sink peak RSS (MiB) | sink RSS sampled at start → end (MiB) | producer peak RSS (MiB) | broker peak RSS (MiB) | worker peak RSS (MiB) | database (MiB) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F, 'NR > 1 { printf "| %d | %.1f | %.1f | %.1f → %.1f | %.1f | %.1f | %.1f | %.0f |\n", $1, $3 / 1000, $5 / 1024, $6 / 1024, $7 / 1024,
    $8 / 1024, $9 / 1024, $10 / 1024, $11 / 1024 }' "$out/pipeline-medians.csv"
  if [[ -n "$floods" ]]; then
    echo
    echo "| broker --hwm | messages offered | payload (B) | accepted before backpressure | broker RSS idle (MiB) | peak (MiB) | growth (MiB) | (HWM + 1) × payload (MiB) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F, 'NR > 1 { printf "| %d | %d | %d | %d | %.1f | %.1f | %.1f | %.1f |\n", $1, $2, $3, $5, $6 / 1024, $7 / 1024, $8 / 1024, $9 / 1024 }' \
      "$out/broker-medians.csv"
  fi
} >"$table"
echo
echo "Medians of $repeat run(s):"
echo
cat "$table"
echo
echo "raw: $pcsv, $bcsv; table: $table"

ran=$(awk -F, 'NR > 1 && $13 == 1' "$pcsv" | wc -l)
(( failures > 0 || ran == 0 )) && why="$failures run(s) failed"
bench_finish "${why:-}" "$ran pipeline run(s), every topic completed"
