#!/usr/bin/env bash
# The real sink, broker and worker serve /metrics while they process 60 topics (some fail and
# are retried); each endpoint's text must pass `promtool check metrics` (format and naming
# lint) and hold the names docs/metrics.md lists. Exit 77 (skipped) without promtool (Debian
# package prometheus). Usage: metrics_promtool.sh BIN_DIR
set -euo pipefail
bin=${1:?usage: $0 BIN_DIR}
if ! command -v promtool >/dev/null; then
  echo "SKIP: promtool not found (Debian package prometheus; scripts/install-deps.sh installs it)"
  exit 77
fi

dir=$(mktemp -d /tmp/topicflow-promtool-XXXXXX)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((status == 0)); then rm -rf "$dir"; else echo "logs and scrapes kept in $dir" >&2; fi
}
trap cleanup EXIT

endpoints=(--frontend "ipc://$dir/frontend" --backend "ipc://$dir/backend"
  --sink "ipc://$dir/sink" --events "ipc://$dir/events")
# start ROLE BINARY ARGS...: starts one process with --metrics-port on a loopback port that is
# free now, and again on another one if the port was taken in between (other tests bind
# ephemeral ports too: "cannot serve metrics ... address in use"). Sets ${ROLE}_port.
start() {
  local role=$1 binary=$2 port pid attempt
  shift 2
  for attempt in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin/$binary" "${endpoints[@]}" --metrics-port "$port" "$@" 2>"$dir/$role.log" &
    pid=$!
    sleep 0.3
    if kill -0 "$pid" 2>/dev/null || ! grep -q 'cannot serve metrics' "$dir/$role.log"; then
      pids+=("$pid")
      printf -v "${role}_port" '%s' "$port"
      return 0
    fi
    wait "$pid" 2>/dev/null || true
    echo "note: $role could not bind metrics port $port (attempt $attempt); trying another" >&2
  done
  echo "FAIL: $role never got a metrics port" >&2
  exit 1
}

start sink topicflow-sink --db "$dir/t.db" --max-attempts 2 --retry-base-ms 10 --retry-max-ms 50 --log-level info
start broker topicflow-broker --log-level info
start worker topicflow-worker --concurrency 4 --handler 'sleep:1-5,fail:0.2' --log-level info

for i in $(seq 1 60); do echo "topic $i"; done >"$dir/topics.txt"
status=0
timeout 60 "$bin/topicflow-producer" "${endpoints[@]}" --wait --progress none --log-level warn \
  "$dir/topics.txt" >"$dir/producer.out" 2>&1 || status=$?
if ((status > 1)); then  # 1: some topics failed, as fail:0.2 with 2 attempts intends
  echo "FAIL: the producer exited $status" >&2
  cat "$dir/producer.out" >&2
  exit 1
fi

scrape() {  # scrape PORT PATH FILE: HTTP 200 or fail
  python3 - "$1" "$2" "$3" <<'PY'
import sys, time, urllib.request
port, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
for _ in range(50):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            open(out, "wb").write(r.read())
            sys.exit(0 if r.status == 200 else 1)
    except OSError:
        time.sleep(0.1)
sys.exit(f"no answer on http://127.0.0.1:{port}{path}")
PY
}

# The sink publishes its metrics snapshot every 500 ms: wait for the final counts to show.
for _ in $(seq 1 30); do
  scrape "$sink_port" /metrics "$dir/sink.metrics"
  grep -q '^topicflow_topics{.*status="completed"} [1-9]' "$dir/sink.metrics" && break
  sleep 0.2
done

failures=0
check() {  # check ROLE PORT NAME...
  local role=$1 port=$2
  shift 2
  local file="$dir/$role.metrics"
  scrape "$port" /metrics "$file"
  scrape "$port" /healthz "$dir/$role.health"
  if ! grep -qx ok "$dir/$role.health"; then
    echo "FAIL: $role /healthz said: $(cat "$dir/$role.health")" >&2
    failures=$((failures + 1))
  fi
  echo "== $role: promtool check metrics"
  if ! promtool check metrics <"$file"; then
    echo "FAIL: $role metrics do not pass promtool (text in $file)" >&2
    failures=$((failures + 1))
  fi
  for name in "$@"; do
    if ! grep -q "^# TYPE $name " "$file"; then
      echo "FAIL: $role metrics lack $name" >&2
      failures=$((failures + 1))
    fi
  done
}

check sink "$sink_port" topicflow_sink_updates_committed_total topicflow_sink_batches_committed_total \
  topicflow_sink_commit_seconds topicflow_sink_batch_size topicflow_topics topicflow_sink_tasks_retried_total
check broker "$broker_port" topicflow_broker_messages_forwarded_total topicflow_broker_hellos_sent_total \
  topicflow_broker_messages_held topicflow_broker_info
check worker "$worker_port" topicflow_worker_tasks_received_total topicflow_worker_tasks_completed_total \
  topicflow_worker_tasks_failed_total topicflow_worker_tasks_in_flight topicflow_worker_task_duration_seconds

# The numbers add up: the worker completed what the sink committed as completed.
completed=$(awk '/^topicflow_topics\{.*status="completed"/ {print $2}' "$dir/sink.metrics")
worker_completed=$(awk '/^topicflow_worker_tasks_completed_total / {print $2}' "$dir/worker.metrics")
echo "sink: $completed completed; worker: $worker_completed completed"
if [[ -z $completed || $completed == 0 ]]; then
  echo "FAIL: the sink's topicflow_topics shows no completed topics" >&2
  failures=$((failures + 1))
fi

if ((failures > 0)); then
  echo "FAIL: $failures problems" >&2
  exit 1
fi
echo "PASS: sink, broker and worker metrics pass promtool check metrics"
