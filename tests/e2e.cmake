# End-to-end tests: the real binaries as separate processes (label `e2e`; `ctest -LE e2e` runs
# the fast suite alone). tests/support/system.hpp is shared with the fault tests.
add_executable(e2e_test ${CMAKE_CURRENT_LIST_DIR}/e2e_test.cpp)
target_link_libraries(e2e_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3
  nlohmann_json::nlohmann_json topicflow_warnings)
target_include_directories(e2e_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(e2e_test PRIVATE
  TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
  TOPICFLOW_EXAMPLES_DIR="${topicflow_SOURCE_DIR}/examples")
add_dependencies(e2e_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(e2e_test PROPERTIES LABELS e2e TIMEOUT 300 DISCOVERY_TIMEOUT 60)

# Metrics endpoints: tests/metrics.cmake (unit scrape test, promtool check of the real binaries).
include(${CMAKE_CURRENT_LIST_DIR}/metrics.cmake)

# The example handlers (examples/handlers/) through the real pipeline, and `status --watch`.
add_executable(examples_test ${CMAKE_CURRENT_LIST_DIR}/examples_test.cpp)
target_link_libraries(examples_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3
  nlohmann_json::nlohmann_json topicflow_warnings)
target_include_directories(examples_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(examples_test PRIVATE
  TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
  TOPICFLOW_EXAMPLES_DIR="${topicflow_SOURCE_DIR}/examples")
add_dependencies(examples_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(examples_test PROPERTIES LABELS e2e TIMEOUT 300 DISCOVERY_TIMEOUT 60)

# ZeroMQ CURVE across the real binaries: authorized peers work, everyone else gets nothing.
add_executable(curve_e2e_test ${CMAKE_CURRENT_LIST_DIR}/curve_e2e_test.cpp)
target_link_libraries(curve_e2e_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3
  topicflow_warnings)
target_include_directories(curve_e2e_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(curve_e2e_test PRIVATE TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
add_dependencies(curve_e2e_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(curve_e2e_test PROPERTIES LABELS e2e TIMEOUT 300 DISCOVERY_TIMEOUT 60)

# The handler SDK installed and used by examples/custom-worker: tests/install.cmake.
include(${CMAKE_CURRENT_LIST_DIR}/install.cmake)

# exec under load: 10,000 tasks, then no leaked descriptors and no zombies in the worker.
add_executable(exec_stress_test ${CMAKE_CURRENT_LIST_DIR}/exec_stress_test.cpp)
target_link_libraries(exec_stress_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3 topicflow_warnings)
target_include_directories(exec_stress_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(exec_stress_test PRIVATE TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
add_dependencies(exec_stress_test topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(exec_stress_test PROPERTIES LABELS e2e TIMEOUT 400 DISCOVERY_TIMEOUT 60)

# exec-persistent: through `topicflow run` with examples/handlers/summarise_server.py.
add_executable(persistent_e2e_test ${CMAKE_CURRENT_LIST_DIR}/persistent_e2e_test.cpp)
target_link_libraries(persistent_e2e_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3
  nlohmann_json::nlohmann_json topicflow_warnings)
target_include_directories(persistent_e2e_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(persistent_e2e_test PRIVATE
  TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
  TOPICFLOW_EXAMPLES_DIR="${topicflow_SOURCE_DIR}/examples")
add_dependencies(persistent_e2e_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer)
gtest_discover_tests(persistent_e2e_test PROPERTIES LABELS e2e TIMEOUT 300 DISCOVERY_TIMEOUT 60)
