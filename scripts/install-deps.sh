#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages topicflow needs to build, test and run. The one list of
# build dependencies: .ci/run, scripts/test.sh and scripts/run-example.sh all call this.
#
#   scripts/install-deps.sh            install what is missing (nothing to do: no apt at all)
#   scripts/install-deps.sh --list     print the package list, one per line
#   scripts/install-deps.sh --dev-tools  also clang-format and clang-tidy (for .clang-format/.clang-tidy)
#
# Runs apt-get as root, or through sudo when not root. Tested on Debian 12 (bookworm).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config   # toolchain (CMake >= 3.25 for the presets)
  libzmq3-dev cppzmq-dev                         # ZeroMQ and its C++ binding
  libmsgpack-cxx-dev libboost-dev                # wire codec (msgpack-cxx 4 needs Boost headers)
  libspdlog-dev libcli11-dev                     # logging, command lines
  libsqlite3-dev sqlite3                         # the store; sqlite3 for operators and tests
  nlohmann-json3-dev libcpp-httplib-dev          # JSON Lines input, metrics endpoint
  libssl-dev zlib1g-dev libbrotli-dev            # what cpp-httplib's pkg-config file requires
  libgtest-dev libgmock-dev libbenchmark-dev     # tests and benchmarks
  clang libclang-rt-14-dev                       # fuzz build (libFuzzer, ASan/UBSan runtimes:
                                                 # only a Recommends of clang, not pulled in)
  python3                                        # examples/handlers/summarise.py, its e2e tests
  python3-pytest python3-flask python3-wheel     # python/ client, examples/flask-app: pytest suites
  chromium chromium-driver python3-selenium      # the dashboard's browser tests (headless)
  fonts-dejavu-core                              # ... and readable screenshots
  prometheus                                     # promtool: the metrics_promtool test
  time procps                                    # bench/: /usr/bin/time (peak RSS), uptime
)

case "${1:-}" in
  --list)
    printf '%s\n' "${packages[@]}"
    exit 0
    ;;
  --dev-tools) packages+=(clang-format clang-tidy) ;;
  "") ;;
  *)
    echo "usage: $0 [--list | --dev-tools]" >&2
    exit 2
    ;;
esac

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
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
