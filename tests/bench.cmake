# Benchmarks are not timed tests: these only check that every harness of bench/run-all.sh runs
# end to end in its quick mode (tiny sizes, once) and loses nothing (every topic completed; the
# latency probe got every sample; sink_bench finished). The numbers they print are not asserted.
# One test per harness, so a failure names it. Label `bench`: ctest -L bench (~1 min in Debug).
if(NOT TOPICFLOW_BUILD_BENCH)
  message(STATUS "topicflow: benchmarks not built (TOPICFLOW_BUILD_BENCH=OFF), bench tests skipped")
  return()
endif()
foreach(harness contention pipeline exec_modes sink_bench scaling latency memory)
  add_test(NAME bench_${harness}_quick
    COMMAND bash ${PROJECT_SOURCE_DIR}/bench/run-all.sh --quick --only ${harness}
            --bin $<TARGET_FILE_DIR:topicflow-bench-probe>
            --out ${CMAKE_CURRENT_BINARY_DIR}/bench-quick)
  set_tests_properties(bench_${harness}_quick PROPERTIES LABELS bench TIMEOUT 300)
endforeach()
# The soak (bench/soak/run.sh, not part of run-all.sh: its full run takes most of an hour): its
# quick mode, seconds of random kills under `topicflow run`, every topic completed.
add_test(NAME bench_soak_quick
  COMMAND bash ${PROJECT_SOURCE_DIR}/bench/soak/run.sh --quick
          --bin $<TARGET_FILE_DIR:topicflow-bench-probe>
          --out ${CMAKE_CURRENT_BINARY_DIR}/bench-quick/soak)
set_tests_properties(bench_soak_quick PROPERTIES LABELS bench TIMEOUT 300)
# The contention bench's end-to-end mode (process start included, one `topicflow run`).
add_test(NAME bench_contention_end_to_end_quick
  COMMAND bash ${PROJECT_SOURCE_DIR}/bench/contention/run.sh --quick --end-to-end
          --bin $<TARGET_FILE_DIR:topicflow-bench-probe>
          --out ${CMAKE_CURRENT_BINARY_DIR}/bench-quick/contention-end-to-end)
set_tests_properties(bench_contention_end_to_end_quick PROPERTIES LABELS bench TIMEOUT 300)
