#!/usr/bin/env bash
# bench/api: the HTTP API and `topicflow status` on a large database (issue 12's targets):
#   - a database of --topics topics (default 1,000,000) in one job ("big": 99 % completed, 0.9 %
#     failed with an error, 0.1 % pending) plus a few small jobs, written directly with sqlite3;
#   - the sink's start: spawn to its HTTP port answering (it scans the table once), median of
#     --repeat restarts;
#   - with the sink up: GET /v1/jobs, GET /v1/jobs/big, a page of 100 failed / completed /
#     pending topics (first page and one from the middle), a topic, the latest errors: --repeat
#     requests each (curl's time_total), median and max;
#   - the dashboard in headless chromium (bench/api/dashboard.py): first paint and rendered rows
#     of the overview and of a job page of failed topics, and the next page, median of --repeat;
#   - `topicflow status --db` (counts and latest errors), median of --repeat;
#   - submission over HTTP: --batches requests of 1,000 topics on one keep-alive connection into
#     a fresh database, topics/s, median of 3.
#
#   bench/api/run.sh [--topics N] [--repeat R] [--bin build/release/bin] [--out DIR] [--quick]
#
# Exit status 0 when every request answered 200. Results: $out/results.csv and meta.txt.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib.sh"

bin="$repo/build/release/bin"
out="$repo/build-bench/api"
topics_n=1000000
repeat=9
batches=100
quick=0
run_timeout=120

usage() {
  cat <<EOF2
usage: $0 [--topics N] [--repeat R] [--batches B] [--bin DIR] [--out DIR] [--quick]
EOF2
}
while (($#)); do
  case "$1" in
    --topics) topics_n="${2:?}"; shift 2 ;;
    --batches) batches="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }; shift "$bench_shift" ;;
  esac
done
if ((quick)); then topics_n=20000; repeat=3; batches=5; fi
need_int --topics "$topics_n"; need_int --repeat "$repeat"; need_int --batches "$batches"
need_bins "$bin" topicflow topicflow-sink topicflow-broker
command -v sqlite3 >/dev/null || die "sqlite3 (the CLI) is needed"
command -v curl >/dev/null || die "curl is needed"
bench_outdir
bench_meta "bench/api --topics $topics_n" >"$out/meta.txt"
csv="$out/results.csv"
echo "what,runs,median_ms,max_ms" >"$csv"
failed=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median_max() {  # reads numbers (ms), prints "median,max"
  sort -g | awk '{ a[++n] = $1 } END { if (!n) { print "0,0"; exit } m = n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2; printf "%.2f,%.2f\n", m, a[n] }'
}
record() {  # record WHAT (numbers on stdin)
  local mm; mm=$(median_max)
  echo "$1,$repeat,$mm" >>"$csv"
  printf '%-44s median %8s ms, max %8s ms\n' "$1" "${mm%,*}" "${mm#*,}"
}

dir=$(bench_tmpdir topicflow-bench-api)
db="$dir/big.db"
port=$(free_port)
endpoints=(--frontend "ipc://$dir/fe" --backend "ipc://$dir/be" --sink "ipc://$dir/sink" --events "ipc://$dir/ev")

# --- the database -----------------------------------------------------------------------------
echo "writing a database of $topics_n topics ..."
started=$(now_ms)
"$bin/topicflow-sink" "${endpoints[@]}" --db "$db" 2>"$dir/create.log" & sink_pid=$!; pids+=($sink_pid)
for _ in $(seq 100); do grep -q 'sink ready' "$dir/create.log" 2>/dev/null && break; sleep 0.05; done
kill -TERM "$sink_pid"; wait_bounded 20 "$sink_pid"; pids=()
sqlite3 "$db" <<SQL || die "cannot write the database"
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $topics_n)
INSERT INTO topics(job, key, payload, status, attempts, result, error, updated_at, created_at,
                   submission, due_at, worker)
SELECT 'big', printf('topic %08d', i), printf('payload of topic %08d', i),
       CASE WHEN i % 1000 = 7 THEN 'pending' WHEN i % 111 = 3 THEN 'failed' ELSE 'completed' END,
       CASE WHEN i % 1000 = 7 THEN 0 ELSE 1 END,
       CASE WHEN i % 111 = 3 OR i % 1000 = 7 THEN NULL ELSE printf('result %d', i) END,
       CASE WHEN i % 111 = 3 AND i % 1000 <> 7 THEN printf('exit 1: failure %d', i) END,
       1700000000000 + i, 1700000000000 + i, 'bench',
       CASE WHEN i % 1000 = 7 THEN 1700000000000 + i END, 'bench-worker'
FROM n;
INSERT INTO topics(job, key, payload, status, attempts, updated_at, created_at, submission)
SELECT 'small-' || (i % 5), 'k' || i, 'p', 'completed', 1, 1700000000000, 1700000000000, 'bench'
FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) SELECT i FROM n);
DELETE FROM jobs;
INSERT INTO jobs(name, pending, running, completed, failed, cancelled, created_at, updated_at)
  SELECT job, sum(status = 'pending'), sum(status = 'running'), sum(status = 'completed'),
         sum(status = 'failed'), sum(status = 'cancelled'), min(created_at), max(updated_at)
  FROM topics GROUP BY job;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
echo "  written in $(( ($(now_ms) - started) / 1000 )) s ($(du -h "$db" | cut -f1))"

# --- the sink's start ---------------------------------------------------------------------------
start_sink() {
  "$bin/topicflow-sink" "${endpoints[@]}" --db "$db" --http-port "$port" 2>>"$dir/sink.log" &
  sink_pid=$!; pids=("$sink_pid")
  local t0; t0=$(now_ms)
  for _ in $(seq 2000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/server" && { echo $(( $(now_ms) - t0 )); return 0; }
    sleep 0.005
  done
  return 1
}
stop_sink() { kill -TERM "$sink_pid"; wait_bounded 30 "$sink_pid"; pids=(); }
for ((r = 0; r < repeat; r++)); do
  start_sink || { failed="the sink did not answer"; break; }
  stop_sink
done | record "sink start to HTTP ready"
start_sink >/dev/null || die "the sink did not start"

# --- requests -----------------------------------------------------------------------------------
get() {  # get NAME PATH: --repeat requests, time_total in ms
  local name=$1 path=$2 r code t
  for ((r = 0; r < repeat; r++)); do
    read -r code t < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$port$path")
    [[ $code == 200 ]] || { echo "GET $path: $code" >&2; failed="GET $path answered $code"; }
    awk -v t="$t" 'BEGIN { printf "%.3f\n", t * 1000 }'
  done | record "$name"
}
middle=$(printf 'topic %08d' $((topics_n / 2)))
middle_q=${middle// /%20}
get "GET /v1/jobs" "/v1/jobs"
get "GET /v1/jobs/big" "/v1/jobs/big"
get "page of 100 failed (first)" "/v1/jobs/big/topics?status=failed&limit=100"
get "page of 100 failed (middle)" "/v1/jobs/big/topics?status=failed&limit=100&from=$middle_q"
get "page of 100 completed (first)" "/v1/jobs/big/topics?status=completed&limit=100"
get "page of 100 completed (middle)" "/v1/jobs/big/topics?status=completed&limit=100&from=$middle_q"
get "page of 100, any status (middle)" "/v1/jobs/big/topics?limit=100&from=$middle_q"
get "page of pending (bounded walk)" "/v1/jobs/big/topics?status=pending&limit=100"
get "one topic" "/v1/jobs/big/topics/$middle_q"
get "latest 10 errors" "/v1/jobs/big/errors?limit=10"

# --- the dashboard in a browser (skipped without chromium + python3-selenium) -------------------
/usr/bin/python3 "$here/dashboard.py" "http://127.0.0.1:$port" big "$repeat" >"$dir/dashboard.csv"
case $? in
  0) for what in "dashboard overview first paint" "dashboard overview with the job" \
                 "dashboard job page first paint" "dashboard job page rendered" "dashboard next page"; do
       grep "^$what," "$dir/dashboard.csv" | cut -d, -f2 | record "$what"
     done ;;
  2) echo "(dashboard timings skipped: chromium, chromedriver or python3-selenium missing)" ;;
  *) failed="the dashboard timing failed" ;;
esac
stop_sink

# --- topicflow status ---------------------------------------------------------------------------
for ((r = 0; r < repeat; r++)); do
  t0=$(now_ms); "$bin/topicflow" status --db "$db" >/dev/null || failed="topicflow status failed"
  echo $(( $(now_ms) - t0 ))
done | record "topicflow status"

# --- submission over HTTP -----------------------------------------------------------------------
rate_csv="$out/submit.csv"
echo "run,topics,seconds,topics_per_s" >"$rate_csv"
for r in 1 2 3; do
  rm -f "$dir"/sub.db*
  "$bin/topicflow-sink" "${endpoints[@]}" --db "$dir/sub.db" --http-port "$port" 2>>"$dir/sink.log" &
  sink_pid=$!; pids=("$sink_pid")
  for _ in $(seq 400); do curl -s -o /dev/null "http://127.0.0.1:$port/v1/server" && break; sleep 0.01; done
  python3 - "$port" "$batches" "$r" >>"$rate_csv" <<'PY' || failed="submission failed"
import http.client, json, sys, time
port, batches, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
bodies = [json.dumps([{"key": f"b{b}-{i}", "payload": f"payload {b} {i}"} for i in range(1000)])
          for b in range(batches)]
conn = http.client.HTTPConnection("127.0.0.1", port)
t0 = time.monotonic()
for body in bodies:
    conn.request("POST", "/v1/jobs/sub/topics", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200 or json.loads(data)["accepted"] != 1000:
        sys.exit(f"answer {resp.status}: {data[:200]!r}")
s = time.monotonic() - t0
print(f"{run},{batches * 1000},{s:.3f},{batches * 1000 / s:.0f}")
PY
  stop_sink
done
sub=$(tail -n +2 "$rate_csv" | cut -d, -f4 | median_max)
printf '%-44s median %8s topics/s\n' "HTTP submission (batches of 1000)" "${sub%,*}"
echo "http_submit_topics_per_s,3,${sub%,*},${sub#*,}" >>"$csv"

bench_finish "$failed" "results in $csv"
