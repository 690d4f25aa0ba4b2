#!/usr/bin/env bash
# Builds topicflow and runs its test suite: the README's test command and what CI runs.
#
#   scripts/test.sh              dev preset (Debug, warnings as errors): every test but `compose`
#   scripts/test.sh asan tsan    other presets from CMakePresets.json, one after the other
#
# Exits non-zero when the build or any test fails. TOPICFLOW_JOBS (default 2) sets parallelism.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs=${TOPICFLOW_JOBS:-2}
scripts/install-deps.sh

run_preset() {
  local preset=$1
  echo "== ${preset}: configure, build, test"
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j "$jobs"
  # --timeout applies to tests without their own TIMEOUT (the gtest ones have 120 s).
  ctest --preset "$preset" -j "$jobs" --output-on-failure --timeout 600
}

if (($# == 0)); then
  run_preset dev
  # TODO(asan): enable once the suite is clean under AddressSanitizer + UBSan:
  # run_preset asan
  # TODO(tsan): enable once the suite is clean under ThreadSanitizer:
  # run_preset tsan
  # The container suite: builds the image and runs docker-compose.yml for real through
  # ../shared/tools/container-env (skipped, exit 77, where that tool is absent).
  ctest --preset compose --output-on-failure
else
  for preset in "$@"; do run_preset "$preset"; done
fi
echo "== all tests passed"
