# End-to-end tests: the real binaries as separate processes (label `e2e`; `ctest -LE e2e` runs
# the fast suite alone). tests/support/system.hpp is shared with the fault tests.
topicflow_system_test(e2e_test LABEL e2e TIMEOUT 300)

# Metrics endpoints: tests/metrics.cmake (unit scrape test, promtool check of the real binaries).
include(${CMAKE_CURRENT_LIST_DIR}/metrics.cmake)

# The example handlers (examples/handlers/) through the real pipeline, and `status --watch`.
topicflow_system_test(examples_test LABEL e2e TIMEOUT 300)

# ZeroMQ CURVE across the real binaries: authorized peers work, everyone else gets nothing.
topicflow_system_test(curve_e2e_test LABEL e2e TIMEOUT 300)

# The handler SDK installed and used by examples/custom-worker: tests/install.cmake.
include(${CMAKE_CURRENT_LIST_DIR}/install.cmake)

# exec under load: 10,000 tasks, then no leaked descriptors and no zombies in the worker.
topicflow_system_test(exec_stress_test LABEL e2e TIMEOUT 400)

# exec-persistent: through `topicflow run` with examples/handlers/summarise_server.py.
topicflow_system_test(persistent_e2e_test LABEL e2e TIMEOUT 300)

# Dispatch: a job spreads evenly over its workers (no worker hoards tasks).
topicflow_system_test(dispatch_e2e_test LABEL e2e TIMEOUT 300)
