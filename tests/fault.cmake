# Fault tests: the real binaries as separate processes, killed, blocked and poisoned mid-run.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fault_test.cpp)
  add_executable(fault_test fault_test.cpp)
  target_link_libraries(fault_test PRIVATE GTest::gtest_main topicflow::common topicflow_warnings)
  target_compile_definitions(fault_test PRIVATE TOPICFLOW_TEST_BIN_DIR="$<TARGET_FILE_DIR:topicflow-sink>")
  add_dependencies(fault_test topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
  gtest_discover_tests(fault_test PROPERTIES LABELS fault TIMEOUT 180 DISCOVERY_TIMEOUT 60)
endif()
