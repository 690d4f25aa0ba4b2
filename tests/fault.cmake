# Fault tests: the real binaries as separate processes, killed, blocked and poisoned mid-run.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/fault_test.cpp)
  add_executable(fault_test fault_test.cpp)
  target_link_libraries(fault_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3 topicflow_warnings)
  target_include_directories(fault_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_compile_definitions(fault_test PRIVATE TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  add_dependencies(fault_test topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
  gtest_discover_tests(fault_test PROPERTIES LABELS fault TIMEOUT 180 DISCOVERY_TIMEOUT 60)
endif()
