#!/usr/bin/env bash
# bench/soak: issue 14's soak. One long `topicflow run` (default 1,000,000 topics, an exec
# handler) while random SIGKILLs hit its children (sink, broker or a worker: a role drawn first,
# then one of its processes) every --kill-every-ms for --kill-for seconds; then every topic must
# be completed, the database intact, and the report says what the kills cost:
#   - per kill: the completion rate before it (5 s), how long until the rate over 1 s was back to
#     half of that (`rate_back_ms`), and for a worker the topics it was running and when the last
#     of those it had to run again completed (`held_done_ms`: its lease expired, and the topic,
#     ready again, queued behind the job's backlog: in a long job that is near its end);
#   - duplicates: the sinks' topicflow_sink_duplicate_deliveries_total, summed over the sink's
#     restarts (scraped every second: a lower bound, the last second before a sink's kill is
#     missed), and the database's extra attempts (sum(attempts - 1): lease expiries);
#   - how long after the last kill the job was done.
# The kills are seeded (--seed, printed): a run can be repeated.
#
#   bench/soak/run.sh                                   # 1M topics, exec:cat, kills for 5 min
#   bench/soak/run.sh --topics 200000 --kill-for 60
#   bench/soak/run.sh --quick                           # CI: 2,000 topics, kills for 6 s
#
# Writes kills.csv (one line per kill), progress.csv (completed over time), soak.md, run.err and
# meta.txt to --out. Exit status: 0 when every topic completed and integrity_check is ok, 1
# otherwise, 2 on bad flags. Needs sqlite3 and curl.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build-bench/soak"
topics=1000000
workers=8
concurrency=2
handler="exec:cat"
lease_ms=2000
kill_every_ms=1500
kill_for=300
seed=$RANDOM
run_timeout=7200
quick=0
repeat=1

usage() {
  cat <<EOF
usage: $0 [options]
  --topics N          topics in the job (default $topics)
  --workers W         --workers of topicflow run (default $workers)
  --concurrency C     --concurrency (default $concurrency)
  --handler SPEC      --handler (default "$handler")
  --lease-ms MS       --lease-ms (default $lease_ms)
  --kill-every-ms MS  mean time between kills, uniform in [MS/2, 3MS/2] (default $kill_every_ms)
  --kill-for S        seconds of kills from the first completion (default $kill_for)
  --seed S            seed of the kills (default: random, printed)
  --bin DIR           the built binaries (default build/release/bin)
  --out DIR           results (default build-bench/soak)
  --timeout S         bound on the whole run (default $run_timeout s)
  --quick             CI: 2,000 topics, 4 workers, kills for 6 s
EOF
}
while (($#)); do
  case "$1" in
    --topics) topics="${2:?}"; shift 2 ;;
    --workers) workers="${2:?}"; shift 2 ;;
    --concurrency) concurrency="${2:?}"; shift 2 ;;
    --handler) handler="${2:?}"; shift 2 ;;
    --lease-ms) lease_ms="${2:?}"; shift 2 ;;
    --kill-every-ms) kill_every_ms="${2:?}"; shift 2 ;;
    --kill-for) kill_for="${2:?}"; shift 2 ;;
    --seed) seed="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then
  topics=2000 workers=4 kill_for=6 run_timeout=120
  [[ "$handler" == "exec:cat" ]] && handler="sleep:10-30"  # seconds long even in a Debug build
fi
need_int --topics "$topics"; need_int --workers "$workers"; need_int --concurrency "$concurrency"
need_int --lease-ms "$lease_ms"; need_int --kill-every-ms "$kill_every_ms"; need_int --kill-for "$kill_for"
need_int --timeout "$run_timeout"
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed: '$seed' is not a number"
command -v sqlite3 >/dev/null || die "sqlite3 not found"
command -v curl >/dev/null || die "curl not found"
need_bins "$bin" topicflow topicflow-sink topicflow-broker topicflow-worker
bin=$(cd "$bin" && pwd)
bench_outdir
bench_meta "bench/soak/run.sh$( ((quick)) && echo ' --quick')" >"$out/meta.txt"
echo "seed $seed; $topics topics, $workers workers x $concurrency, $handler, lease $lease_ms ms; kills every ~$kill_every_ms ms for $kill_for s" | tee -a "$out/meta.txt"

dir=$(bench_tmpdir topicflow-soak); tmpdirs+=("$dir")
db="$dir/soak.db"
make_topics "$topics" "$dir/topics.txt"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
q() { sqlite3 -cmd '.timeout 5000' "$db" "$1" 2>/dev/null; }
completed_now() { q "SELECT completed FROM jobs WHERE name = 'default'"; }
metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$2"; }

"$bin/topicflow" run --db "$db" --workers "$workers" --concurrency "$concurrency" \
  --handler "$handler" --lease-ms "$lease_ms" --http-port "$port" --progress none \
  "$dir/topics.txt" >"$out/run.out" 2>"$out/run.err" &
run_pid=$!
pids+=("$run_pid")
started=$(now_ms)

# children of `topicflow run` of one role, by their comm (15 bytes): "sink", "broker", "worker"
children() {
  local comm
  case "$1" in sink) comm=topicflow-sink ;; broker) comm=topicflow-broke ;; *) comm=topicflow-worke ;; esac
  ps -o pid=,stat=,comm= --ppid "$run_pid" 2>/dev/null | awk -v c="$comm" '$3 == c && $2 !~ /^Z/ { print $1 }'
}

RANDOM=$seed
echo "t_ms,completed" >"$out/progress.csv"
echo "kill,t_ms,role,pid,completed,held" >"$out/kills.csv"
: >"$dir/held.txt"
kills=0 chaos_from=0 next_kill=0 last_kill=0 dup_total=0 dup_last=0 last_scrape=0 failed=""
while kill -0 "$run_pid" 2>/dev/null; do
  t=$(now_ms)
  if (( t - started > run_timeout * 1000 )); then failed="the run took longer than $run_timeout s"; break; fi
  c=$(completed_now); c=${c:-0}
  echo "$t,$c" >>"$out/progress.csv"
  if (( t - last_scrape >= 1000 )); then
    last_scrape=$t
    d=$(metric topicflow_sink_duplicate_deliveries_total "$(curl -s --max-time 2 "http://127.0.0.1:$port/metrics")")
    if [[ -n "$d" ]]; then
      d=${d%.*}
      (( d < dup_last )) && dup_total=$((dup_total + dup_last))  # a new sink: its counters restart
      dup_last=$d
    fi
  fi
  if (( chaos_from == 0 && c > 0 )); then chaos_from=$t; next_kill=$((t + kill_every_ms)); fi
  if (( chaos_from > 0 && t < chaos_from + kill_for * 1000 && t >= next_kill && c < topics )); then
    roles=(sink broker worker)
    role=${roles[RANDOM % 3]}
    mapfile -t candidates < <(children "$role")
    if ((${#candidates[@]})); then
      victim=${candidates[RANDOM % ${#candidates[@]}]}
      held=0
      if [[ $role == worker ]]; then  # the topics it runs now: when were they done?
        q "SELECT key FROM topics WHERE status = 'running' AND worker = '$(hostname)-$victim'" >"$dir/held.$kills"
        held=$(wc -l <"$dir/held.$kills")
      fi
      kill -KILL "$victim" 2>/dev/null
      kills=$((kills + 1)) last_kill=$(now_ms)
      echo "$kills,$last_kill,$role,$victim,$c,$held" >>"$out/kills.csv"
    fi
    next_kill=$((t + kill_every_ms / 2 + RANDOM % (kill_every_ms + 1)))
  fi
  sleep 0.25
done
wait "$run_pid"; rc=$?
pids=()
dup_total=$((dup_total + dup_last))

# --- the report -------------------------------------------------------------------------------
total=$(q "SELECT count(*) FROM topics"); done_n=$(q "SELECT count(*) FROM topics WHERE status = 'completed'")
integrity=$(q "PRAGMA integrity_check")
read -r max_attempts extra < <(q "SELECT max(attempts), sum(attempts - 1) FROM topics" | tr '|' ' ')
last_done=$(q "SELECT max(updated_at) FROM topics")
[[ -z "$failed" && "$rc" -ne 0 ]] && failed="topicflow run exited with $rc"
[[ -z "$failed" && "$done_n" != "$topics" ]] && failed="$done_n of $topics topics completed"
[[ -z "$failed" && "$integrity" != "ok" ]] && failed="integrity_check: $integrity"

# per kill: rate before (5 s), rate_back_ms, held_done_ms
{
  echo "kill,t_ms,role,pid,completed,held,rate_before_per_s,rate_back_ms,held_done_ms"
  tail -n +2 "$out/kills.csv" | while IFS=, read -r k tk role pid ck held; do
    held_done=""
    if [[ $role == worker && $held -gt 0 ]]; then
      keys=$(sed "s/'/''/g; s/.*/'&'/" "$dir/held.$((k - 1))" | paste -sd,)
      # only those the kill cost an attempt (a fast handler's "running" rows are often done
      # already, their results not committed yet)
      last=$(q "SELECT max(updated_at) FROM topics WHERE key IN ($keys) AND attempts > 1")
      [[ -n "$last" ]] && held_done=$((last - tk))
    fi
    awk -F, -v tk="$tk" '
      NR > 1 { t[++n] = $1; c[n] = $2 }
      function at(x,   i, v) { v = 0; for (i = 1; i <= n && t[i] <= x; i++) v = c[i]; return v }
      END {
        before = (at(tk) - at(tk - 5000)) / 5
        back = ""
        if (before > 0)
          for (i = 1; i <= n; i++)
            if (t[i] > tk + 1000 && (c[i] - at(t[i] - 1000)) >= before / 2) { back = t[i] - tk; break }
        printf "%.0f,%s", before, back
      }' "$out/progress.csv" | { IFS=, read -r before back; echo "$k,$tk,$role,$pid,$ck,$held,$before,$back,$held_done"; }
  done
} >"$dir/kills.full.csv"
mv "$dir/kills.full.csv" "$out/kills.csv"

median_of() { sort -n | awk '{ v[++n] = $1 } END { if (n) print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2); else print "-" }'; }
max_of() { sort -n | awk '{ v = $1 } END { print (NR ? v : "-") }'; }
col() { awk -F, -v c="$1" -v r="$2" 'NR > 1 && (r == "" || $3 == r) && $c != "" { print $c }' "$out/kills.csv"; }
{
  echo "# soak: $topics topics, $workers workers x $concurrency, \`$handler\`, seed $seed"
  echo
  echo "$(cat "$out/meta.txt")"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| result | ${failed:-ok: $done_n of $topics completed, integrity $integrity} |"
  echo "| wall time | $(( ($(now_ms) - started) / 1000 )) s |"
  echo "| kills | $kills (sink $(col 3 sink | wc -l), broker $(col 3 broker | wc -l), workers $(col 3 worker | wc -l)) |"
  echo "| done after the last kill | $( ((kills)) && echo "$((last_done - last_kill)) ms" || echo -) |"
  echo "| rate back to half, median / max (sink) | $(col 8 sink | median_of) / $(col 8 sink | max_of) ms |"
  echo "| rate back to half, median / max (broker) | $(col 8 broker | median_of) / $(col 8 broker | max_of) ms |"
  echo "| a killed worker's topics run again: completed after the kill, median / max | $(col 9 worker | median_of) / $(col 9 worker | max_of) ms |"
  echo "| duplicate deliveries (sinks' counters, lower bound) | $dup_total |"
  echo "| extra attempts in the database (lease expiries), max attempts | ${extra:-0}, ${max_attempts:-0} |"
} | tee "$out/soak.md"
if [[ -n "$failed" ]]; then
  echo "FAILED: $failed" >&2
  exit 1
fi
exit 0
