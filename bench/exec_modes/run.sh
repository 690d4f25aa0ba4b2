#!/usr/bin/env bash
# bench/exec_modes: exec:COMMAND (one process per task) against exec-persistent:COMMAND (one
# long-lived co-process per slot, JSON Lines) on the same handler, examples/handlers/summarise.py
# and its co-process twin summarise_server.py, in one invocation. For each start-up delay
# (SUMMARISE_STARTUP_MS, a simulated slow import on top of Python's own start-up) the two modes
# are interleaved run by run, so machine load falls on both. Each run is `topicflow run` over the
# same topics into a fresh database; the clock covers the whole command (start-up of sink, broker
# and workers included, the same for both modes).
#
#   bench/exec_modes/run.sh                         # 288 topics, startup 0 and 50 ms, R = 5
#   bench/exec_modes/run.sh --repeat 3 --startup-ms "0 50 200" --concurrency 8
#
# Writes runs.csv, medians.csv, table.md and meta.txt to --out. Exit 0 when every run completed
# every topic, 1 otherwise, 2 on bad flags.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build/exec_modes"
repeat=5
startups="0 50"
workers=1
concurrency=4
topics_file="$repo/examples/topics.txt"
run_timeout=600
quick=0

usage() {
  cat <<USAGE
usage: $0 [options]
  --repeat R            runs of each mode and start-up delay (default $repeat; medians reported)
  --startup-ms "MS ..." SUMMARISE_STARTUP_MS values (default "$startups")
  --workers W           worker processes (default $workers)
  --concurrency C       tasks at once per worker (default $concurrency)
  --topics-file FILE    topics, one per line (default examples/topics.txt)
  --bin DIR             the topicflow binaries (default build/release/bin)
  --out DIR             results (default build/exec_modes)
  --timeout S           bound on each run (default $run_timeout s)
  --quick               CI: 12 topics, start-up 0 ms, once: checks that both modes run
USAGE
}
while (($#)); do
  case "$1" in
    --startup-ms) startups="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --concurrency) concurrency="${2:?}"; shift 2 ;;
    --topics-file) topics_file="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
need_int --repeat "$repeat"; need_int --timeout "$run_timeout"
need_bins "$bin" topicflow
command -v python3 >/dev/null || die "python3 is needed"
command -v sqlite3 >/dev/null || die "sqlite3 is needed"
[[ -f "$topics_file" ]] || die "no topics file $topics_file"

bench_outdir
tmp=$(bench_tmpdir topicflow-exec-modes) && tmpdirs+=("$tmp")
if ((quick)); then
  head -12 "$topics_file" >"$tmp/topics.txt"
  topics_file="$tmp/topics.txt"; startups="0"; repeat=1
fi
n=$(grep -c . "$topics_file")
per_task="exec:python3 $repo/examples/handlers/summarise.py"
persistent="exec-persistent:python3 $repo/examples/handlers/summarise_server.py"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "bin: $bin"
  echo "topics: $n ($topics_file), workers $workers, concurrency $concurrency, repeat $repeat"
  echo "python: $(python3 --version 2>&1)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/meta.txt"

echo "startup_ms,mode,run,wall_s,completed,tasks_per_s,load1" > "$out/runs.csv"
status=0
for startup in $startups; do
  for ((r = 1; r <= repeat; r++)); do
    for mode in exec exec-persistent; do
      handler=$per_task
      [[ $mode == exec-persistent ]] && handler=$persistent
      db="$tmp/$mode-$startup-$r.db"
      t0=$(date +%s.%N)
      SUMMARISE_STARTUP_MS=$startup timeout "$run_timeout" "$bin/topicflow" run --db "$db" --progress none \
        --workers "$workers" --concurrency "$concurrency" --handler "$handler" "$topics_file" \
        > "$tmp/out.txt" 2> "$tmp/err.txt"
      rc=$?
      t1=$(date +%s.%N)
      done_n=$(sqlite3 "$db" "SELECT count(*) FROM topics WHERE status = 'completed'" 2>/dev/null || echo 0)
      if ((rc != 0)) || [[ "$done_n" != "$n" ]]; then
        echo "run.sh: $mode startup $startup run $r: exit $rc, $done_n of $n completed" >&2
        tail -5 "$tmp/err.txt" >&2
        status=1
      fi
      wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
      rate=$(awk -v n="$done_n" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')
      printf '%s,%s,%d,%s,%d,%s,%s\n' "$startup" "$mode" "$r" "$wall" "$done_n" "$rate" \
        "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$out/runs.csv"
      rm -f "$db" "$db-wal" "$db-shm"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"

# Medians per (startup, mode), and the speed-up of persistent over per-task.
python3 - "$out" <<'PY'
import csv, statistics, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/runs.csv")))
groups = {}
for r in rows:
    groups.setdefault((int(r["startup_ms"]), r["mode"]), []).append(r)
with open(f"{out}/medians.csv", "w") as m:
    m.write("startup_ms,mode,runs,median_wall_s,median_tasks_per_s,min_tasks_per_s,max_tasks_per_s\n")
    for (s, mode), rs in sorted(groups.items()):
        rates = [float(r["tasks_per_s"]) for r in rs]
        m.write(f"{s},{mode},{len(rs)},{statistics.median(float(r['wall_s']) for r in rs):.2f},"
                f"{statistics.median(rates):.1f},{min(rates):.1f},{max(rates):.1f}\n")
lines = ["| start-up delay | exec: tasks/s (wall s) | exec-persistent: tasks/s (wall s) | persistent / exec |",
         "|---:|---:|---:|---:|"]
for s in sorted({k[0] for k in groups}):
    cells = []
    rate = {}
    for mode in ("exec", "exec-persistent"):
        rs = groups.get((s, mode), [])
        rate[mode] = statistics.median(float(r["tasks_per_s"]) for r in rs)
        wall = statistics.median(float(r["wall_s"]) for r in rs)
        cells.append(f"{rate[mode]:.1f} ({wall:.2f})")
    lines.append(f"| {s} ms | {cells[0]} | {cells[1]} | {rate['exec-persistent'] / rate['exec']:.1f}x |")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $status
