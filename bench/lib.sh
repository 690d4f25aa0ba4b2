# bench/lib.sh: shell helpers shared by the bench/*/run.sh harnesses. Source it:
#   here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); source "$here/../lib.sh"
# It defines `repo` (the source tree), the process/temp-dir bookkeeping and its EXIT trap, the
# clocks, bounded waits, per-process CPU time and peak RSS, the options every harness shares,
# medians of CSV columns, and starting/stopping a topicflow system on private ipc:// endpoints.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "${0##*/}: $*" >&2; exit 2; }

# --- processes and temp dirs: every process we start goes into `pids`; the trap ends them -------
pids=()
tmpdirs=()
bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  ((${#pids[@]})) && sleep 0.2
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${tmpdirs[@]}"; do rm -rf "$p"; done
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_tmpdir() {  # bench_tmpdir PREFIX: prints a new temp dir, removed at exit
  local d
  d=$(mktemp -d "/tmp/$1.XXXXXX") || die "mktemp failed"
  echo "$d"
}

now_ms() { date +%s%3N; }
load1() { cut -d' ' -f1 /proc/loadavg; }
clk_tck=$(getconf CLK_TCK)
# CPU ms (user + sys) and peak RSS (VmHWM, KiB) of a live process; 0 if it is gone.
cpu_ms() { awk -v t="$clk_tck" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) * 1000 / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Waits for the given pids, at most $1 seconds, then SIGKILLs what is left. Returns 1 on timeout.
wait_bounded() {
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

# --- options every harness shares ---------------------------------------------------------------
# In a harness's option loop:  *) bench_option "$@" || { usage >&2; die "unknown option '$1'"; }
#                               shift "$bench_shift"; continue ;;
# sets bin, out, repeat, run_timeout, quick (defaults are the harness's own, set before the loop).
bench_shift=1
bench_option() {
  bench_shift=2
  case "$1" in
    --bin) bin="${2:?--bin needs a directory}" ;;
    --out) out="${2:?--out needs a directory}" ;;
    --repeat) repeat="${2:?--repeat needs a number}" ;;
    --timeout) run_timeout="${2:?--timeout needs seconds}" ;;
    --quick) quick=1; bench_shift=1 ;;
    *) return 1 ;;
  esac
}
need_int() {  # need_int FLAG VALUE...: each VALUE a positive integer, or exit 2
  local flag=$1 v; shift
  for v in "$@"; do [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "$flag: '$v' is not a positive integer"; done
}
need_bins() {  # need_bins DIR NAME...
  local dir=$1 b; shift
  for b in "$@"; do
    [[ -x "$dir/$b" ]] || die "$dir/$b not found (cmake --preset release && cmake --build --preset release, or pass --bin)"
  done
}
bench_outdir() {  # creates $out and makes it absolute
  mkdir -p "$out" || die "cannot create $out"
  out=$(cd "$out" && pwd)
}

# Machine, build and load, for meta.txt.
bench_meta() {  # bench_meta TITLE
  echo "$1: $(date -u +%FT%TZ) on $(hostname)"
  echo "nproc $(nproc); CPU $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
  echo "build: $(grep -m1 '^CMAKE_BUILD_TYPE' "${bin:-.}/../CMakeCache.txt" 2>/dev/null | cut -d= -f2) ($bin)"
  echo "source: $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "load at start: $(uptime)"
}

# --- medians --------------------------------------------------------------------------------------
# csv_medians KEYS VALUES FILE: groups the rows of a CSV with a header by the columns KEYS
# ("1,2": column numbers) and prints, per group in order of first appearance, the key columns,
# the number of runs and the median of each column in VALUES ("5-9,12" or "5,6"). Header: the
# key names, "runs", the value names.
csv_medians() {
  awk -F, -v keys="$1" -v vals="$2" '
    function expand(spec, out,   parts, n, i, r, a, b, k, c) {
      n = split(spec, parts, ","); k = 0
      for (i = 1; i <= n; i++) {
        if (split(parts[i], r, "-") == 2) { a = r[1] + 0; b = r[2] + 0 } else { a = b = parts[i] + 0 }
        for (c = a; c <= b; c++) out[++k] = c
      }
      return k
    }
    function median(g, c,   m, i, j, t, a) {
      m = n[g]; for (i = 1; i <= m; i++) a[i] = v[g, c, i] + 0
      for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    BEGIN { nk = expand(keys, K); nv = expand(vals, V) }
    NR == 1 {
      line = ""
      for (i = 1; i <= nk; i++) line = line (i > 1 ? "," : "") $K[i]
      line = line ",runs"
      for (i = 1; i <= nv; i++) line = line "," $V[i]
      print line; next
    }
    {
      g = ""
      for (i = 1; i <= nk; i++) g = g (i > 1 ? "," : "") $K[i]
      if (!(g in n)) order[++groups] = g
      n[g]++
      for (i = 1; i <= nv; i++) v[g, V[i], n[g]] = $V[i]
    }
    END {
      for (o = 1; o <= groups; o++) {
        g = order[o]; line = g "," n[g]
        for (i = 1; i <= nv; i++) line = line "," median(g, V[i])
        print line
      }
    }' "$3"
}

# --- a topicflow system on private ipc:// endpoints ------------------------------------------------
# tf_start DIR WORKERS [sink args...] [-- worker args...]: starts topicflow-broker, topicflow-sink
# (--db DIR/tf.db) and WORKERS topicflow-worker from $bin, logs in DIR, and waits (bounded) until
# the sink is ready, the broker streams and every worker has started, then 0.3 s more for the
# workers' connections. Sets tf_endpoints (the four endpoint options, for a producer), tf_db and
# tf_pids (broker, sink, workers...). Returns 1 if they did not all come up.
tf_start() {
  local dir=$1 n=$2 i; shift 2
  local sink_args=() worker_args=()
  while (($#)); do
    [[ "$1" == "--" ]] && { shift; worker_args=("$@"); break; }
    sink_args+=("$1"); shift
  done
  tf_endpoints=(--frontend "ipc://$dir/fe" --backend "ipc://$dir/be" --sink "ipc://$dir/sink" --events "ipc://$dir/ev")
  tf_db="$dir/tf.db"
  tf_pids=()
  "$bin/topicflow-broker" "${tf_endpoints[@]}" 2>"$dir/broker.log" & tf_pids+=($!); pids+=($!)
  "$bin/topicflow-sink" "${tf_endpoints[@]}" --db "$tf_db" "${sink_args[@]}" 2>"$dir/sink.log" & tf_pids+=($!); pids+=($!)
  for ((i = 0; i < n; i++)); do
    "$bin/topicflow-worker" "${tf_endpoints[@]}" "${worker_args[@]}" 2>"$dir/worker$i.log" & tf_pids+=($!); pids+=($!)
  done
  local deadline=$(( $(now_ms) + 60000 )) started=0
  while (( $(now_ms) < deadline )); do
    started=$(cat "$dir"/worker*.log 2>/dev/null | grep -c ' starting: ')
    grep -q 'sink ready' "$dir/sink.log" 2>/dev/null && grep -q 'streaming' "$dir/broker.log" 2>/dev/null &&
      (( started >= n )) && break
    sleep 0.05
  done
  if (( started < n )); then
    echo "only $started of $n workers started" >&2
    return 1
  fi
  sleep 0.3
}

# tf_stop [LIMIT_S]: workers first (nothing in flight), then the sink commits what it holds and
# stops, then the broker. Returns 1 if the sink or the broker needed SIGKILL. Forgets all pids.
tf_stop() {
  local limit=${1:-30} ok=0
  ((${#tf_pids[@]} > 2)) && {
    kill -TERM "${tf_pids[@]:2}" 2>/dev/null
    wait_bounded "$limit" "${tf_pids[@]:2}" || echo "workers needed SIGKILL" >&2
  }
  kill -TERM "${tf_pids[1]}" "${tf_pids[0]}" 2>/dev/null
  wait_bounded "$limit" "${tf_pids[0]}" "${tf_pids[1]}" || { ok=1; echo "sink/broker needed SIGKILL" >&2; }
  tf_pids=()
  pids=()  # all reaped: never signal a pid that may have been reused
  return $ok
}

# Writes K topics, one per line, to FILE unless it already has them.
make_topics() {  # make_topics K FILE
  [[ -s "$2" && $(wc -l <"$2") -eq $1 ]] && return 0
  awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++) printf "topic %07d\n", i }' >"$2"
}

# bench_finish FAILED_WHY OK_MESSAGE: a harness's last words. Exits 1 with FAILED_WHY on stderr
# when it is non-empty, else prints OK_MESSAGE (and the quick-mode caveat) and exits 0.
bench_finish() {
  if [[ -n $1 ]]; then
    echo "FAILED: $1" >&2
    exit 1
  fi
  echo "OK: $2"
  if (( ${quick:-0} )); then echo "(quick mode: checks that it runs; numbers are not a benchmark)"; fi
  exit 0
}
