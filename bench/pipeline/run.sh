#!/usr/bin/env bash
# bench/pipeline: end-to-end throughput of the whole pipeline (issue 4's first target):
# producer -> sink -> broker -> W workers -> sink -> DB, `noop` handler by default, on private
# ipc:// endpoints and a fresh database per run. For each run it reports the wall time (producer
# start to exit, everything else already up), topics/s, the CPU time (user + sys, from
# /proc/PID/stat) and peak RSS of every process, and checks the final state (every topic
# `completed`).
#
# Several --bin directories run interleaved (rep 1 of A, rep 1 of B, rep 2 of A, ...), so a
# baseline and a candidate build are compared side by side under the same load.
#
#   bench/pipeline/run.sh --topics 100000 --repeat 5 --bin /tmp/base/bin --bin build/release/bin
#   bench/pipeline/run.sh --topics 20000 --callgrind      # instructions per topic per process
#
# --callgrind runs every process under valgrind --tool=callgrind and reports instructions
# (user space only: syscalls are not counted) per topic per process; wall times are then
# meaningless. Exit status 0 when every run completed every topic.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bins=()
out="$repo/build-bench/pipeline"
topics_n=100000
workers=2
concurrency=1
handler="noop"
repeat=3
callgrind=0
run_timeout=300
sink_args=()
worker_args=()

usage() {
  cat <<EOF
usage: $0 [options]
  --bin DIR           directory of the built binaries; repeat to compare builds side by side
                      (default build/release/bin)
  --topics K          topics per run (default $topics_n)
  --workers W         worker processes (default $workers)
  --concurrency C     handlers per worker (default $concurrency)
  --handler SPEC      worker handler (default $handler)
  --repeat R          runs per build (default $repeat; medians reported)
  --callgrind         run every process under callgrind; report instructions per topic
  --sink-arg ARG      extra argument for topicflow-sink (repeatable)
  --worker-arg ARG    extra argument for topicflow-worker (repeatable)
  --out DIR           results directory (default build-bench/pipeline)
  --timeout S         bound on each run (default $run_timeout s)
  --quick             CI: 2,000 topics once; checks that it runs and every topic completes
EOF
}
quick=0
while (($#)); do
  case "$1" in
    --bin) bins+=("$(cd "${2:?}" && pwd)") || die "no directory $2"; shift 2 ;;
    --topics) topics_n="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --concurrency) concurrency="${2:?}"; shift 2 ;;
    --handler) handler="${2:?}"; shift 2 ;;
    --callgrind) callgrind=1; shift ;;
    --sink-arg) sink_args+=("${2?}"); shift 2 ;;
    --worker-arg) worker_args+=("${2?}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then topics_n=2000; repeat=1; fi
((${#bins[@]})) || bins=("$repo/build/release/bin")
need_int --topics "$topics_n"; need_int --workers "$workers"; need_int --concurrency "$concurrency"
need_int --repeat "$repeat"; need_int --timeout "$run_timeout"
for b in "${bins[@]}"; do need_bins "$b" topicflow-broker topicflow-sink topicflow-worker topicflow-producer; done
command -v sqlite3 >/dev/null || die "the sqlite3 shell is needed to read the final state"
((callgrind)) && { command -v valgrind >/dev/null || die "valgrind is not installed"; }
bench_outdir

topics="$out/topics-$topics_n.txt"
make_topics "$topics_n" "$topics"

csv="$out/pipeline.csv"
echo "build,rep,topics,workers,concurrency,handler,wall_ms,topics_per_s,completed,producer_cpu_ms,sink_cpu_ms,broker_cpu_ms,workers_cpu_ms,sink_rss_kb,producer_rss_kb,broker_rss_kb,load1,ok" >"$csv"
{
  echo "pipeline bench: $(date -u +%FT%TZ); nproc $(nproc); $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "source: $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
  for b in "${bins[@]}"; do echo "build: $b"; done
  echo "topics $topics_n; workers $workers x concurrency $concurrency; handler $handler; repeat $repeat; callgrind $callgrind"
  echo "sink args: ${sink_args[*]:-}; worker args: ${worker_args[*]:-}"
  echo "load at start: $(uptime)"
} | tee "$out/meta.txt"

failures=0
run_one() {  # build-index rep
  local bi=$1 rep=$2 bin=${bins[$1]} tmp
  tmp=$(bench_tmpdir tfp) && tmpdirs+=("$tmp")
  local db="$tmp/p.db" load; load=$(load1)
  local e=(--frontend "ipc://$tmp/fe" --backend "ipc://$tmp/be" --sink "ipc://$tmp/sink" --events "ipc://$tmp/ev")
  local vg=()
  ((callgrind)) && vg=(valgrind --tool=callgrind --quiet)
  local rpids=() i ok=1
  "${vg[@]}" $( ((callgrind)) && echo "--callgrind-out-file=$tmp/cg.broker" ) \
    "$bin/topicflow-broker" "${e[@]}" 2>"$tmp/broker.log" & rpids+=($!); pids+=($!)
  "${vg[@]}" $( ((callgrind)) && echo "--callgrind-out-file=$tmp/cg.sink" ) \
    "$bin/topicflow-sink" "${e[@]}" --db "$db" "${sink_args[@]}" 2>"$tmp/sink.log" & rpids+=($!); pids+=($!)
  for ((i = 0; i < workers; i++)); do
    "${vg[@]}" $( ((callgrind)) && echo "--callgrind-out-file=$tmp/cg.worker$i" ) \
      "$bin/topicflow-worker" "${e[@]}" --handler "$handler" --concurrency "$concurrency" "${worker_args[@]}" \
      2>"$tmp/worker$i.log" & rpids+=($!); pids+=($!)
  done
  local deadline=$(( $(now_ms) + 60000 )) started=0
  while (( $(now_ms) < deadline )); do
    started=$(cat "$tmp"/worker*.log 2>/dev/null | grep -c ' starting: ')
    grep -q 'sink ready' "$tmp/sink.log" 2>/dev/null && grep -q 'streaming' "$tmp/broker.log" 2>/dev/null &&
      (( started >= workers )) && break
    sleep 0.05
  done
  (( started >= workers )) || { ok=0; echo "only $started of $workers workers started" >&2; }
  sleep $( ((callgrind)) && echo 2 || echo 0.3 )
  local c0=() p
  for p in "${rpids[@]}"; do c0+=("$(cpu_ms "$p")"); done
  local t0 t1 rc
  t0=$(now_ms)
  if ((callgrind)); then
    timeout -k 5 "$run_timeout" valgrind --tool=callgrind --quiet --callgrind-out-file="$tmp/cg.producer" \
      "$bin/topicflow-producer" "${e[@]}" --wait --progress none "$topics" >/dev/null 2>"$tmp/producer.log"
    rc=$?
    printf '0 0 0\n' >"$tmp/producer.time"
  else
    timeout -k 5 "$run_timeout" /usr/bin/time -o "$tmp/producer.time" -f '%U %S %M' \
      "$bin/topicflow-producer" "${e[@]}" --wait --progress none "$topics" >/dev/null 2>"$tmp/producer.log"
    rc=$?
  fi
  t1=$(now_ms)
  (( rc == 0 )) || { ok=0; echo "producer exited $rc: $(tail -1 "$tmp/producer.log")" >&2; }
  local c1=() r=()
  for p in "${rpids[@]}"; do c1+=("$(cpu_ms "$p")"); r+=("$(rss_kb "$p")"); done
  for ((i = 2; i < ${#rpids[@]}; i++)); do kill -TERM "${rpids[$i]}" 2>/dev/null; done
  wait_bounded 60 "${rpids[@]:2}" || echo "workers needed SIGKILL" >&2
  kill -TERM "${rpids[1]}" "${rpids[0]}" 2>/dev/null
  wait_bounded 60 "${rpids[0]}" "${rpids[1]}" || { ok=0; echo "sink/broker needed SIGKILL" >&2; }
  pids=()
  local completed
  completed=$(sqlite3 "$db" "SELECT count(*) FROM topics WHERE status='completed'" 2>/dev/null || echo 0)
  (( completed == topics_n )) || { ok=0; echo "only $completed of $topics_n topics completed" >&2; }
  local wall=$(( t1 - t0 )) pu ps prss
  read -r pu ps prss <"$tmp/producer.time"
  local pcpu; pcpu=$(awk -v u="$pu" -v s="$ps" 'BEGIN { printf "%.0f", (u + s) * 1000 }')
  local bcpu=$(( c1[0] - c0[0] )) scpu=$(( c1[1] - c0[1] )) wcpu=0
  for ((i = 2; i < ${#rpids[@]}; i++)); do wcpu=$(( wcpu + c1[i] - c0[i] )); done
  local tps; tps=$(awk -v n="$topics_n" -v w="$wall" 'BEGIN { printf "%.0f", n * 1000 / w }')
  echo "$bi,$rep,$topics_n,$workers,$concurrency,$handler,$wall,$tps,$completed,$pcpu,$scpu,$bcpu,$wcpu,${r[1]},$prss,${r[0]},$load,$ok" >>"$csv"
  printf '  build %d rep %d: %6d ms, %7d topics/s; CPU ms producer %d sink %d broker %d workers %d; RSS MiB sink %d producer %d (load %s)%s\n' \
    "$bi" "$rep" "$wall" "$tps" "$pcpu" "$scpu" "$bcpu" "$wcpu" $(( r[1] / 1024 )) $(( ${prss:-0} / 1024 )) "$load" \
    "$( ((ok)) || echo ' FAILED')"
  if ((callgrind)); then
    local f role ir
    for f in "$tmp"/cg.*; do
      role=${f##*/cg.}
      ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
      cp "$f" "$out/callgrind.out.$bi.$role"
      printf '    %-9s %14s Ir  %8.0f Ir/topic\n' "$role" "$ir" "$(awk -v i="$ir" -v n="$topics_n" 'BEGIN { print i / n }')" |
        tee -a "$out/callgrind.txt"
    done
  fi
  rm -rf "$tmp"
  ((ok))
}

for ((rep = 1; rep <= repeat; rep++)); do
  for ((bi = 0; bi < ${#bins[@]}; bi++)); do
    run_one "$bi" "$rep" || failures=$((failures + 1))
  done
done
echo "load at end: $(uptime)" | tee -a "$out/meta.txt"

# Medians per build.
csv_medians 1 7-16 "$csv" >"$out/pipeline-medians.csv"
awk -F, -v names="${bins[*]}" 'BEGIN { split(names, name, " ") }
  NR > 1 { printf "build %d (%s): median of %d: %.0f ms, %.0f topics/s; CPU ms producer %.0f, sink %.0f, broker %.0f, workers %.0f; sink RSS %.0f MiB\n",
             $1, name[$1 + 1], $2, $3, $4, $6, $7, $8, $9, $10 / 1024 }' "$out/pipeline-medians.csv" | tee "$out/summary.txt"
((failures == 0))
