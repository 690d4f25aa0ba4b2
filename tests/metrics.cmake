# Metrics endpoints (docs/metrics.md). Included from e2e.cmake.
#  metrics_test (label unit): broker, worker and sink endpoints scraped over HTTP in-process.
#  metrics_promtool (label e2e): the real binaries' /metrics through `promtool check metrics`
#    (Debian package prometheus); skipped (77) when promtool is not installed.
topicflow_test(metrics_test topicflow::broker_core topicflow::worker_core topicflow::sink_core)

add_test(NAME metrics_promtool
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/metrics_promtool.sh ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(metrics_promtool PROPERTIES LABELS e2e TIMEOUT 120 SKIP_RETURN_CODE 77)

# `topicflow run --metrics-port P`: sink on P, broker on P+1, worker i on P+1+i (label e2e).
topicflow_system_test(run_metrics_test LABEL e2e TIMEOUT 300)
