#!/usr/bin/env bash
# Compose suite: builds docker/Dockerfile and runs docker-compose.yml for real, the way a user
# does, then asserts the database on the sink's volume.
#
#   1. container-env setup (podman, docker-compose, local debian base images), start-api
#   2. docker-compose config -q               (the file, and with docker/compose.curve.yml, offline)
#   3. docker-compose build                    (the image, once; layers cached between runs)
#   4. up -d: broker, sink, 4 workers (deploy.replicas), producer on examples/topics.txt
#      -> producer exits 0, every topic of job `example` is `completed` in the DB, and the
#         broker, sink and workers report healthy (the compose health checks work in the image)
#   4b. from the host, through the sink's published port (127.0.0.1 only): GET /v1/jobs shows
#      job example with its counts, the dashboard is served, and a write is refused (403: the
#      file's sink is read-only)
#   4c. the sink recreated with docker/compose.http-token.yml: a write without the token, or
#      with a wrong one, is refused (401); with it, pause and resume work
#   5. SIGKILL the broker and one worker -> restart policies bring them back
#   6. --scale worker=8, producer again with TOPICFLOW_JOB=second -> all completed, and more
#      than 4 distinct workers took part
#   7. stop: every long-running container exits 0 (SIGTERM reached the binary, clean shutdown);
#      the DB read from the volume after the stop still has both jobs complete
#   8. down -v (also on any failure: trap)
#
# Needs root (container-env). Exit 77 (CTest SKIP_RETURN_CODE) only when
# ../shared/tools/container-env is absent (looked up beside this checkout, then beside the main
# checkout of a linked git worktree; TOPICFLOW_CONTAINER_ENV=PATH names it). Every step is
# bounded by `timeout`.
# HTTP requests use python3's urllib (python3 is in scripts/install-deps.sh; curl is not).
# Env: TOPICFLOW_COMPOSE_TOPICS=FILE uses FILE instead of examples/topics.txt (local experiments);
#      TOPICFLOW_COMPOSE_LOGS=FILE keeps every service's full log there (pass or fail).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
container_env=${TOPICFLOW_CONTAINER_ENV:-}
if [[ -z $container_env ]]; then
  container_env="$root/../shared/tools/container-env"
  if [[ ! -f $container_env ]] && common=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
    container_env="$(dirname "$common")/../shared/tools/container-env"
  fi
fi

log() { printf '[compose %4ds] %s\n' "$SECONDS" "$*"; }

if [ ! -f "$container_env" ]; then
  log "SKIP: $container_env not found (the compose suite needs the shared container-env tool)"
  exit 77
fi

project="tfcompose$$"
image="topicflow:compose-test"
volume="${project}_data"
work=$(mktemp -d)
compose_files=(-f "$root/docker-compose.yml")

# The compose files interpolate TOPICFLOW_IMAGE, TOPICFLOW_JOB, TOPICFLOW_HTTP_HOST_PORT and
# TOPICFLOW_HTTP_TOKEN_SECRET: start from a known state. The sink's HTTP port is published on a
# free port of the host's loopback, not 8080 (another stack or test may hold that).
unset TOPICFLOW_JOB
export TOPICFLOW_IMAGE="$image"
http_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TOPICFLOW_HTTP_HOST_PORT="$http_port"
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$token" >"$work/http-token"
chown 10001:10001 "$work/http-token"  # the image's user reads it, as docker/compose.http-token.yml says
chmod 0400 "$work/http-token"
export TOPICFLOW_HTTP_TOKEN_SECRET="$work/http-token"

topics="${TOPICFLOW_COMPOSE_TOPICS:-$root/examples/topics.txt}"
[ -s "$topics" ] || { log "FAIL: topics file $topics is missing or empty"; exit 1; }
expected=$(grep -v '^[[:space:]]*$' "$topics" | sort -u | wc -l)
if [ -n "${TOPICFLOW_COMPOSE_TOPICS:-}" ]; then
  # Same service, another file mounted on /examples (compose merges volumes by target).
  mkdir -p "$work/examples"
  cp "$topics" "$work/examples/topics.txt"
  chmod -R a+rX "$work/examples"
  printf 'services:\n  producer:\n    volumes:\n      - %s:/examples:ro\n' "$work/examples" > "$work/override.yml"
  compose_files+=(-f "$work/override.yml")
fi

compose() {
  local limit=$1
  shift
  timeout "$limit" docker-compose -p "$project" "${compose_files[@]}" "$@"
}

# Full logs of every container of the project, stopped ones included (docker-compose 1.29's
# `logs` shows none once they are stopped, so ask podman).
save_logs() {
  [ -n "${TOPICFLOW_COMPOSE_LOGS:-}" ] || return 0
  local id
  : >"$TOPICFLOW_COMPOSE_LOGS"
  for id in $(timeout 30 podman ps -a -q --filter "label=com.docker.compose.project=$project"); do
    {
      echo "===== $(podman inspect --format '{{.Name}} (exit {{.State.ExitCode}}, restarts {{.RestartCount}})' "$id")"
      timeout 30 podman logs --timestamps "$id" 2>&1
    } >>"$TOPICFLOW_COMPOSE_LOGS"
  done
}

failed=1
cleanup() {
  set +e
  if [ "$failed" = 1 ] && [ -n "${DOCKER_HOST:-}" ]; then
    log "--- last logs of every service ---"
    compose 60 logs --no-color --tail 40 2>&1 | tail -n 300
  fi
  [ "$failed" = 1 ] && [ -n "${DOCKER_HOST:-}" ] && save_logs
  if [ -n "${DOCKER_HOST:-}" ]; then
    compose 180 down -v -t 5 --remove-orphans >"$work/down.log" 2>&1 || cat "$work/down.log"
  fi
  timeout 60 podman volume rm -f "$volume" >/dev/null 2>&1
  timeout 30 bash "$container_env" stop-api >/dev/null 2>&1
  rm -rf "$work"
  log "cleaned up (project $project)"
}
trap cleanup EXIT
# set -e stops on any unchecked failure: say where.
trap 'log "FAIL: line $LINENO: $BASH_COMMAND (exit $?)"' ERR
trap 'exit 130' INT TERM

fail() {
  log "FAIL: $*"
  exit 1
}

# One-off container on the sink's volume, as an operator inspecting or backing up the DB would.
on_volume() {
  timeout 60 podman run --rm -v "$volume:/data" "$@"
}
sql() {
  on_volume --entrypoint sqlite3 "$image_id" -readonly /data/topicflow.db "$1"
}

assert_job() {
  local job=$1 total completed
  total=$(sql "SELECT count(*) FROM topics WHERE job = '$job'") || fail "cannot read the DB on volume $volume"
  completed=$(sql "SELECT count(*) FROM topics WHERE job = '$job' AND status = 'completed'") || fail "cannot read the DB"
  log "job $job: $completed of $total topics completed (expected $expected)"
  if [ "$total" != "$expected" ] || [ "$completed" != "$expected" ]; then
    sql "SELECT status, count(*) FROM topics WHERE job = '$job' GROUP BY status" || true
    fail "job $job: expected $expected completed topics, found $completed completed of $total"
  fi
}

# Waits for the container to exit (bounded) and prints its exit code.
wait_exit() {
  local id=$1 limit=$2
  timeout "$limit" podman wait "$id" || echo "timeout"
}

# `http METHOD PATH [TOKEN]` sends a request to the sink's published port on the host's loopback
# (a POST with an empty body) and prints "CODE BODY" (CODE 0 when nothing answered).
http() {
  timeout 30 python3 - "$1" "http://127.0.0.1:$http_port$2" "${@:3}" <<'PY'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url, method=method, data=None if method == "GET" else b"")
if len(sys.argv) > 3:
    request.add_header("Authorization", "Bearer " + sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy
try:
    with opener.open(request, timeout=20) as response:
        code, body = response.status, response.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except OSError as e:
    code, body = 0, str(e).encode()
print(code, body.decode(errors="replace").replace("\n", " ")[:2000])
PY
}

# `expect_http CODE METHOD PATH [TOKEN]` fails unless the answer has that code; prints the body.
expect_http() {
  local want=$1 answer
  shift
  answer=$(http "$@")
  [ "${answer%% *}" = "$want" ] || fail "$1 $2 through 127.0.0.1:$http_port: expected HTTP $want, got: $answer" >&2
  printf '%s\n' "${answer#* }"
}

# Polls GET /healthz through the published port until it answers 200.
wait_http() {
  local deadline=$((SECONDS + $1)) answer
  while :; do
    answer=$(http GET /healthz)
    [ "${answer%% *}" = 200 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "GET /healthz through 127.0.0.1:$http_port did not answer 200 within $1 s: $answer"
    sleep 1
  done
}

# `json_check EXPR` reads a JSON body on stdin and fails unless the Python expression EXPR over
# it (named `j`) is true.
json_check() {
  python3 -c 'import json, sys; j = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

running_count() {
  local n=0 id
  for id in $(compose 30 ps -q "$1"); do
    [ "$(podman inspect --format '{{.State.Status}}' "$id")" = running ] && n=$((n + 1))
  done
  echo "$n"
}

assert_running() {
  local service=$1 want=$2 got
  got=$(running_count "$service")
  [ "$got" = "$want" ] || fail "expected $want running $service container(s), found $got"
}

wait_healthy() {
  local deadline=$((SECONDS + $1)) id status all
  while :; do
    all=1
    for id in $(compose 30 ps -q broker sink worker); do
      status=$(podman inspect --format '{{.State.Health.Status}}' "$id")
      [ "$status" = healthy ] || all=0
    done
    [ "$all" = 1 ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      for id in $(compose 30 ps -q broker sink worker); do
        podman inspect --format '{{.Name}}: {{.State.Health.Status}} {{range .State.Health.Log}}[{{.ExitCode}} {{.Output}}]{{end}}' "$id"
      done
      fail "not every long-running container became healthy within $1 s"
    fi
    sleep 2
  done
}

# Polls until `service` has `want` running containers and at least one of them restarted.
wait_restarted() {
  local service=$1 want=$2 limit=$3 deadline=$((SECONDS + $3)) restarts
  while :; do
    restarts=0
    for id in $(compose 30 ps -q "$service"); do
      restarts=$((restarts + $(podman inspect --format '{{.RestartCount}}' "$id")))
    done
    if [ "$restarts" -ge 1 ] && [ "$(running_count "$service")" = "$want" ]; then
      log "$service restarted by its restart policy ($restarts restart(s))"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || fail "$service was not restarted within $limit s"
    sleep 1
  done
}

log "repo $root, project $project, $expected distinct topics from $topics"

log "container-env setup"
timeout 900 bash "$container_env" setup >"$work/setup.log" 2>&1 || { tail -n 30 "$work/setup.log"; fail "container-env setup"; }
eval "$(timeout 60 bash "$container_env" start-api)"
[ -n "${DOCKER_HOST:-}" ] || fail "container-env start-api printed no DOCKER_HOST"
export DOCKER_HOST

log "docker-compose config -q"
compose 60 config -q || fail "docker-compose.yml does not validate"
timeout 60 docker-compose -p "$project" -f "$root/docker-compose.yml" -f "$root/docker/compose.curve.yml" config -q ||
  fail "docker/compose.curve.yml (the CURVE override) does not validate"
timeout 60 docker-compose -p "$project" -f "$root/docker-compose.yml" -f "$root/docker/compose.http-token.yml" config -q ||
  fail "docker/compose.http-token.yml (the HTTP token override) does not validate"

log "building the image (docker/Dockerfile, cached layers reused)"
build_start=$SECONDS
compose 2400 build broker >"$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; fail "image build"; }
grep -m1 '^runtime packages:' "$work/build.log" || true
image_id=$(podman image inspect --format '{{.Id}}' "$image")
log "image $image built in $((SECONDS - build_start)) s, $(podman image inspect --format '{{.Size}}' "$image_id" | awk '{printf "%.1f MB", $1 / 1e6}')"

log "up -d: broker, sink, workers (deploy.replicas), producer (job example)"
compose 300 up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "compose up"; }
assert_running worker 4
producer=$(compose 30 ps -q producer)
[ -n "$producer" ] || fail "no producer container"
rc=$(wait_exit "$producer" 600)
[ "$rc" = 0 ] || { compose 30 logs --no-color --tail 30 producer; fail "producer (job example) exited $rc"; }
log "producer finished (exit 0): $(compose 30 logs --no-color producer | grep -o 'job example: [0-9]* completed.*' | tail -n1)"
assert_job example
topicflow_status() {
  on_volume --entrypoint topicflow "$image_id" status --db /data/topicflow.db "$@"
}
topicflow_status --job example >"$work/status.txt" 2>&1 || { cat "$work/status.txt"; fail "topicflow status"; }
cat "$work/status.txt"

log "HTTP from the host through the published port 127.0.0.1:$http_port (read-only sink)"
wait_http 60
jobs_body=$(expect_http 200 GET /v1/jobs)
log "GET /v1/jobs: $jobs_body"
echo "$jobs_body" | json_check "[(x['total'], x['completed'], x['pending'], x['running'], x['failed'], x['cancelled']) for x in j['jobs'] if x['job'] == 'example'] == [($expected, $expected, 0, 0, 0, 0)]" ||
  fail "GET /v1/jobs does not show job example with $expected of $expected topics completed"
expect_http 200 GET /v1/server | json_check "j['read_only'] is True" || fail "GET /v1/server does not say read-only"
expect_http 200 GET / | grep -qi '<html' || fail "GET / is not the dashboard's page"
refused=$(expect_http 403 POST /v1/jobs/example/pause)
log "POST /v1/jobs/example/pause refused (403): $refused"
expect_http 403 DELETE /v1/jobs/example >/dev/null
expect_http 200 GET /v1/jobs/example | json_check "j['paused'] is False and j['completed'] == $expected" ||
  fail "job example changed after refused writes"

log "health checks"
wait_healthy 120
log "broker, sink and 4 workers healthy"

log "sink recreated with docker/compose.http-token.yml: writes need the bearer token"
compose_files+=(-f "$root/docker/compose.http-token.yml")
compose 300 up -d --no-build --no-deps sink >"$work/up-token.log" 2>&1 || { cat "$work/up-token.log"; fail "up sink with the token override"; }
wait_http 60
expect_http 200 GET /v1/server | json_check "j['read_only'] is False and j['auth'] is True" ||
  fail "GET /v1/server: expected a writable sink that needs a token"
refused=$(expect_http 401 POST /v1/jobs/example/pause)
log "POST /v1/jobs/example/pause without the token refused (401): $refused"
expect_http 401 POST /v1/jobs/example/pause "not-$token" >/dev/null
expect_http 401 DELETE /v1/jobs/example >/dev/null
expect_http 200 POST /v1/jobs/example/pause "$token" | json_check "j['paused'] is True" || fail "pause with the token"
expect_http 200 GET /v1/jobs/example | json_check "j['paused'] is True and j['completed'] == $expected" ||
  fail "job example is not paused after a pause with the token"
expect_http 200 POST /v1/jobs/example/resume "$token" | json_check "j['paused'] is False" || fail "resume with the token"
log "pause and resume with the token: 200; job example still $expected of $expected completed"

log "SIGKILL the broker and one worker (simulated crashes)"
broker=$(compose 30 ps -q broker)
worker1=$(compose 30 ps -q worker | sed -n 1p)  # not head: compose gets SIGPIPE (exit 141) when head exits first
kill -KILL "$(podman inspect --format '{{.State.Pid}}' "$broker")"
# With init: true the container's main process is the init; kill the worker under it.
worker_init=$(podman inspect --format '{{.State.Pid}}' "$worker1")
worker_pid=$(awk '{print $1}' "/proc/$worker_init/task/$worker_init/children" 2>/dev/null || true)
kill -KILL "${worker_pid:-$worker_init}"
wait_restarted broker 1 60
wait_restarted worker 4 60

log "scale to 8 workers, producer again (job second)"
compose 300 up -d --no-build --no-recreate --scale worker=8 worker >"$work/scale.log" 2>&1 || { cat "$work/scale.log"; fail "scale up"; }
assert_running worker 8
job_start=$SECONDS
TOPICFLOW_JOB=second compose 300 up -d --no-build --no-deps --force-recreate producer >"$work/up2.log" 2>&1 || { cat "$work/up2.log"; fail "producer (job second) up"; }
producer=$(compose 30 ps -q producer)
rc=$(wait_exit "$producer" 600)
[ "$rc" = 0 ] || { compose 30 logs --no-color --tail 30 producer; fail "producer (job second) exited $rc"; }
log "producer finished (exit 0) in $((SECONDS - job_start)) s"
assert_job second
workers_used=$(sql "SELECT count(DISTINCT worker) FROM topics WHERE job = 'second'") || fail "cannot read the DB"
log "job second: $workers_used distinct workers reported"
[ "$workers_used" -gt 4 ] || fail "job second ran on $workers_used workers; expected more than 4 after --scale worker=8"

log "stop: SIGTERM to every container, within stop_grace_period"
ids=$(compose 30 ps -q broker sink worker)
stop_at=$(date -u +%H:%M:%S.%N)
compose 180 stop >"$work/stop.log" 2>&1 || { cat "$work/stop.log"; fail "compose stop"; }
unclean=0
for id in $ids; do
  code=$(podman inspect --format '{{.State.ExitCode}}' "$id")
  if [ "$code" != 0 ]; then
    # 137 = SIGKILLed at the end of stop_grace_period: SIGTERM did not stop it in time.
    podman inspect --format '{{.Name}} exited {{.State.ExitCode}}: SIGTERM at '"$stop_at"' UTC, finished at {{.State.FinishedAt}}; last log lines:' "$id"
    timeout 30 podman logs --timestamps "$id" 2>&1 | tail -n 3
    unclean=$((unclean + 1))
  fi
done
[ "$unclean" = 0 ] || fail "$unclean container(s) did not exit 0 after SIGTERM (expected a clean shutdown)"
log "broker, sink and 8 workers exited 0"
assert_job example
assert_job second

save_logs
compose 180 down -v -t 5 >"$work/down.log" 2>&1 || { cat "$work/down.log"; fail "compose down -v"; }
if podman volume exists "$volume"; then fail "volume $volume left after down -v"; fi
failed=0
log "PASS in $SECONDS s"
