# Metrics endpoints (docs/metrics.md). Included from e2e.cmake.
#  metrics_test (label unit): broker, worker and sink endpoints scraped over HTTP in-process.
#  metrics_promtool (label e2e): the real binaries' /metrics through `promtool check metrics`
#    (Debian package prometheus); skipped (77) when promtool is not installed.
topicflow_test(metrics_test topicflow::broker_core topicflow::worker_core topicflow::sink_core)

add_test(NAME metrics_promtool
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/metrics_promtool.sh ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(metrics_promtool PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)

# `topicflow run --metrics-port P`: sink on P, broker on P+1, worker i on P+1+i (label e2e).
add_executable(run_metrics_test ${CMAKE_CURRENT_LIST_DIR}/run_metrics_test.cpp)
target_link_libraries(run_metrics_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3 topicflow_warnings)
target_include_directories(run_metrics_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(run_metrics_test PRIVATE TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
add_dependencies(run_metrics_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(run_metrics_test PROPERTIES LABELS e2e TIMEOUT 300 DISCOVERY_TIMEOUT 60)
