# Benchmarks are not timed tests: this only checks that bench/contention runs end to end in its
# quick mode (8 workers, 100 topics, once per design) and that topicflow finished every topic.
# The numbers it prints are not asserted. Label `bench`: ctest -L bench.
if(NOT TOPICFLOW_BUILD_BENCH)
  message(STATUS "topicflow: benchmarks not built (TOPICFLOW_BUILD_BENCH=OFF), bench tests skipped")
  return()
endif()
add_test(NAME bench_contention_quick
  COMMAND bash ${PROJECT_SOURCE_DIR}/bench/contention/run.sh --quick
          --bin $<TARGET_FILE_DIR:topicflow-direct-worker>
          --out ${CMAKE_CURRENT_BINARY_DIR}/bench-contention-quick)
set_tests_properties(bench_contention_quick PROPERTIES LABELS bench TIMEOUT 300)
