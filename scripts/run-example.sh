#!/usr/bin/env bash
# The README's run command: installs what building and running needs (not the test toolchain),
# builds the release binaries and processes examples/topics.txt with 58 worker processes whose
# handler sleeps 20-100 ms per topic.
# Extra arguments go to `topicflow run`, e.g. scripts/run-example.sh --concurrency 2
# The database is build/example.db; inspect it with: build/release/bin/topicflow status --db build/example.db
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh --run
# The binaries only: the tests and benchmarks need packages the run does not (scripts/test.sh).
cmake --preset release -DTOPICFLOW_BUILD_TESTS=OFF -DTOPICFLOW_BUILD_BENCH=OFF
cmake --build --preset release -j "${TOPICFLOW_JOBS:-2}" --target \
  topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer
# A fresh database each time, so every run really processes the 288 topics (on an existing
# database, completed topics are skipped by design).
rm -f build/example.db build/example.db-wal build/example.db-shm
exec build/release/bin/topicflow run --db build/example.db --workers 58 --handler sleep:20-100 "$@" \
  examples/topics.txt
