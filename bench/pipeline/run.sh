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
repo=$(cd "$here/../.." && pwd)

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
EOF
}
die() { echo "run.sh: $*" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --bin) bins+=("$(cd "${2:?}" && pwd)") || die "no directory $2"; shift ;;
    --topics) topics_n="${2:?}"; shift ;;
    --workers) workers="${2:?}"; shift ;;
    --concurrency) concurrency="${2:?}"; shift ;;
    --handler) handler="${2:?}"; shift ;;
    --repeat) repeat="${2:?}"; shift ;;
    --callgrind) callgrind=1 ;;
    --sink-arg) sink_args+=("${2?}"); shift ;;
    --worker-arg) worker_args+=("${2?}"); shift ;;
    --out) out="${2:?}"; shift ;;
    --timeout) run_timeout="${2:?}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
  shift
done
((${#bins[@]})) || bins=("$repo/build/release/bin")
for v in "$topics_n" "$workers" "$concurrency" "$repeat" "$run_timeout"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "'$v' is not a positive integer"
done
for b in "${bins[@]}"; do
  for x in topicflow-broker topicflow-sink topicflow-worker topicflow-producer; do
    [[ -x "$b/$x" ]] || die "$b/$x not found"
  done
done
command -v sqlite3 >/dev/null || die "the sqlite3 shell is needed to read the final state"
((callgrind)) && { command -v valgrind >/dev/null || die "valgrind is not installed"; }
mkdir -p "$out" && out=$(cd "$out" && pwd) || die "cannot create $out"

pids=()
tmpdirs=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.2
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${tmpdirs[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
load1() { cut -d' ' -f1 /proc/loadavg; }
clk_tck=$(getconf CLK_TCK)
# CPU ms (user + sys) and peak RSS (KiB) of a live process.
cpu_ms() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) * 1000 / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

wait_bounded() {  # seconds pids...: 1 if they had to be killed
  local limit_s=$1; shift
  local deadline=$(( $(now_ms) + limit_s * 1000 )) p alive
  while :; do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
    ((alive)) || break
    if (( $(now_ms) >= deadline )); then
      for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
      for p in "$@"; do wait "$p" 2>/dev/null; done
      return 1
    fi
    sleep 0.05
  done
  for p in "$@"; do wait "$p" 2>/dev/null; done
  return 0
}

topics="$out/topics-$topics_n.txt"
[[ -s "$topics" ]] || awk -v n="$topics_n" 'BEGIN { for (i = 1; i <= n; i++) printf "topic %07d\n", i }' >"$topics"

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
  tmp=$(mktemp -d /tmp/tfp.XXXXXX) && tmpdirs+=("$tmp")
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
for ((bi = 0; bi < ${#bins[@]}; bi++)); do
  awk -F, -v b="$bi" -v name="${bins[$bi]}" '
    NR > 1 && $1 == b { n++; w[n] = $7; t[n] = $8; p[n] = $10; s[n] = $11; k[n] = $12; x[n] = $13; rs[n] = $14 }
    function med(a, n,   i, j, tmp) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    END { if (n) printf "build %d (%s): median of %d: %.0f ms, %.0f topics/s; CPU ms producer %.0f, sink %.0f, broker %.0f, workers %.0f; sink RSS %.0f MiB\n",
            b, name, n, med(w, n), med(t, n), med(p, n), med(s, n), med(k, n), med(x, n), med(rs, n) / 1024 }' "$csv"
done | tee "$out/summary.txt"
((failures == 0))
