#!/usr/bin/env bash
# Builds topicflow and runs its test suites: the README's test command and what CI runs.
#
#   scripts/test.sh              dev, compose, asan, tsan, then fuzz: what CI (.ci/run) runs
#   scripts/test.sh dev          one step (or several: scripts/test.sh asan tsan)
#   scripts/test.sh fuzz         libFuzzer on wire::decode and the API body parser, together
#                                TOPICFLOW_FUZZ_SECONDS (60), half each
#
# Presets come from CMakePresets.json; each step configures, builds and runs its ctest preset:
#   dev      Debug, warnings as errors: unit, e2e, fault and bench labels (all but compose)
#   compose  the container suite (ctest preset compose, on the dev configuration): builds the
#            image and runs docker-compose.yml for real through ../shared/tools/container-env
#            (skipped, exit 77, where that tool is absent)
#   asan     ASan + UBSan (GCC, -O1): unit, e2e and fault labels
#   tsan     TSan (GCC, -O1; tsan.supp for libzmq): unit, e2e and fault labels
#   fuzz     clang: wire_fuzz (seeds generated from the current encoder) and api_json_fuzz
#            (tests/fuzz/api_json_seeds), 30 s each
# The sanitizer presets send every report, also those of the processes the e2e and fault tests
# start (a child that dies under `topicflow run` is restarted, so its exit would go unnoticed),
# to build/<preset>/sanitizer.<exe>.<pid>; any such file fails the step and is printed.
#
# Measured on this machine (2 shared cores, -j2, empty build directories; other builds were
# running beside it, so these are upper-end figures), 2026-11-27:
#   dev      build  2.0 min, tests 1.1 min
#   compose  1.8 min with the image's layers cached (a cold image build adds its Release
#            compile and package layers, a few minutes more)
#   asan     build  7.5-9 min (the slowest step: -O1 with ASan+UBSan), tests 1.0-1.3 min
#   tsan     build  2.5-4 min, tests 1.0 min
#   fuzz     build  0.2 min, fuzzing 1.0 min
#   total    ~22 min warm, ~30 min with a cold image: under CI's 45 min budget (hard limit 90),
#            so the sanitizer presets run the whole unit + e2e + fault suite, not a subset.
# Each step prints its own time ("== asan: passed in 101 s").
#
# Exits non-zero when a build, a test or a sanitizer fails. TOPICFLOW_JOBS (default 2) sets
# parallelism.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=${TOPICFLOW_JOBS:-2}
fuzz_seconds=${TOPICFLOW_FUZZ_SECONDS:-60}
scripts/install-deps.sh

# Prints the sanitizer reports a preset's run left behind; fails when there is any.
check_sanitizer_logs() {
  local preset=$1 logs
  mapfile -t logs < <(find "build/${preset}" -maxdepth 1 -name 'sanitizer.*' -type f 2>/dev/null)
  ((${#logs[@]} == 0)) && return 0
  echo "== ${preset}: sanitizer reports from ${#logs[@]} process(es):" >&2
  for log in "${logs[@]}"; do
    echo "---- ${log}" >&2
    cat "$log" >&2
  done
  return 1
}

run_preset() {
  local preset=$1 start=$SECONDS status=0
  if [[ $preset == compose ]]; then
    echo "== compose: container suite"
    local log
    log=$(mktemp)
    ctest --preset compose --output-on-failure 2>&1 | tee "$log" || status=$?
    # compose_test.sh exits 77 where there is no container tool: ctest counts that as skipped
    # (and exits 0), which is not a pass.
    if ((status == 0)) && grep -q 'Skipped' "$log"; then
      echo "== compose: skipped (no container tool: see tests/compose/compose_test.sh)"
      skipped+=(compose)
    else
      echo "== compose: $( ((status == 0)) && echo passed || echo FAILED) in $((SECONDS - start)) s"
    fi
    rm -f "$log"
    return "$status"
  fi
  echo "== ${preset}: configure, build, test"
  if [[ $preset == fuzz ]]; then
    cmake --preset fuzz -DTOPICFLOW_FUZZ_SECONDS="$fuzz_seconds"
  else
    cmake --preset "$preset"
  fi
  cmake --build --preset "$preset" -j "$jobs"
  echo "== ${preset}: built in $((SECONDS - start)) s"
  find "build/${preset}" -maxdepth 1 -name 'sanitizer.*' -type f -delete 2>/dev/null || true
  # --timeout applies to tests without their own TIMEOUT (the gtest ones have 120 s).
  ctest --preset "$preset" -j "$jobs" --output-on-failure --timeout 600 || status=$?
  check_sanitizer_logs "$preset" || status=1
  echo "== ${preset}: $( ((status == 0)) && echo passed || echo FAILED) in $((SECONDS - start)) s"
  return "$status"
}

if (($# == 0)); then
  set -- dev compose asan tsan fuzz
fi
skipped=()
for preset in "$@"; do run_preset "$preset"; done
echo "== all tests passed in $((SECONDS / 60)) min $((SECONDS % 60)) s$( ((${#skipped[@]} > 0)) && echo " (skipped: ${skipped[*]})")"
