#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages topicflow needs. The one list of dependencies: .ci/run,
# scripts/test.sh and scripts/run-example.sh all call this.
#
#   scripts/install-deps.sh              what the whole test suite needs (scripts/test.sh)
#   scripts/install-deps.sh --run        only what building and running the binaries needs
#                                        (scripts/run-example.sh): toolchain and libraries
#   scripts/install-deps.sh --list [--run]  print the package list, one per line
#   scripts/install-deps.sh --dev-tools  the same as without options (kept for older notes: the
#                                        test list has clang-format and clang-tidy, for lint)
#
# Runs apt-get as root, or through sudo when not root. Tested on Debian 12 (bookworm).
# The test list has `prometheus` for its promtool (the metrics_promtool test); Debian has no
# package with promtool alone, and installing `prometheus` would start a Prometheus server on
# port 9090. This script keeps it from starting: a policy-rc.d refuses service starts during the
# install, and on a systemd machine the service is masked first (`systemctl unmask prometheus`
# undoes that if you want the server).
set -euo pipefail

run_packages=(
  build-essential cmake ninja-build pkg-config   # toolchain (CMake >= 3.25 for the presets)
  libzmq3-dev cppzmq-dev                         # ZeroMQ and its C++ binding
  libmsgpack-cxx-dev libboost-dev                # wire codec (msgpack-cxx 4 needs Boost headers)
  libspdlog-dev libcli11-dev                     # logging, command lines
  libsqlite3-dev sqlite3                         # the store; sqlite3 for operators and tests
  nlohmann-json3-dev                             # JSON Lines input, the HTTP API's JSON
  libcpp-httplib-dev                             # the sink's HTTP API and dashboard
  libssl-dev zlib1g-dev libbrotli-dev            # what cpp-httplib's pkg-config file requires
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev     # tests and benchmarks
  clang libclang-rt-14-dev                       # fuzz build (libFuzzer, ASan/UBSan runtimes:
                                                 # only a Recommends of clang, not pulled in)
  python3                                        # examples/handlers/summarise.py, its e2e tests
  python3-pytest python3-flask python3-wheel     # python/ client, examples/flask-app: pytest suites
  chromium chromium-driver python3-selenium      # the dashboard's browser tests (headless)
  fonts-dejavu-core                              # ... and readable screenshots
  prometheus                                     # promtool: the metrics_promtool test (see above)
  time procps                                    # bench/: /usr/bin/time (peak RSS), uptime
  strace                                         # fault tests: fsyncs counted per commit
  clang-format clang-tidy                        # scripts/test.sh lint (clang-tidy has
                                                 # run-clang-tidy)
)

mode=test
list=false
for arg in "$@"; do
  case "$arg" in
    --list) list=true ;;
    --run) mode=run ;;
    --dev-tools) mode=dev-tools ;;
    *)
      echo "usage: $0 [--list] [--run | --dev-tools]" >&2
      exit 2
      ;;
  esac
done
packages=("${run_packages[@]}")
[[ $mode == run ]] || packages+=("${test_packages[@]}")
if $list; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
# Keep the prometheus package's server from starting (see the top of this file).
policy_rc=/usr/sbin/policy-rc.d
own_policy=false
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl mask prometheus.service >/dev/null 2>&1 || true
  fi
  if [[ ! -e $policy_rc ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy_rc" >/dev/null
    "${sudo[@]}" chmod 755 "$policy_rc"
    own_policy=true
  fi
fi
cleanup() { if $own_policy; then "${sudo[@]}" rm -f "$policy_rc"; fi; }
trap cleanup EXIT

"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
