# The handler SDK as a user gets it (label `install`, and `e2e` so the e2e runs include it):
# `cmake --install` of this build into a temporary prefix, examples/custom-worker configured and
# built against it with find_package(topicflow), and the resulting worker run in a real pipeline
# (sink, broker, producer from this build). The example is compiled with this build's compiler
# and flags, so under the sanitizer presets it links the instrumented libraries.
add_executable(install_test ${CMAKE_CURRENT_LIST_DIR}/install_test.cpp)
target_link_libraries(install_test PRIVATE GTest::gtest_main topicflow::common SQLite::SQLite3
  nlohmann_json::nlohmann_json topicflow_warnings)
target_include_directories(install_test PRIVATE ${CMAKE_CURRENT_LIST_DIR})
string(TOUPPER "${CMAKE_BUILD_TYPE}" _topicflow_build_type_upper)
target_compile_definitions(install_test PRIVATE
  TOPICFLOW_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
  TOPICFLOW_BUILD_DIR="${CMAKE_BINARY_DIR}"
  TOPICFLOW_EXAMPLES_DIR="${topicflow_SOURCE_DIR}/examples"
  TOPICFLOW_CMAKE_COMMAND="${CMAKE_COMMAND}"
  TOPICFLOW_CMAKE_GENERATOR="${CMAKE_GENERATOR}"
  TOPICFLOW_CXX_COMPILER="${CMAKE_CXX_COMPILER}"
  TOPICFLOW_CXX_FLAGS="${CMAKE_CXX_FLAGS}"
  TOPICFLOW_EXE_LINKER_FLAGS="${CMAKE_EXE_LINKER_FLAGS}"
  TOPICFLOW_BUILD_TYPE="${CMAKE_BUILD_TYPE}")
add_dependencies(install_test topicflow topicflow-broker topicflow-sink topicflow-worker topicflow-producer
  topicflow_common topicflow_worker_core)
# One test, added directly: gtest_discover_tests cannot pass a list of two labels through.
add_test(NAME custom_worker_install COMMAND install_test)
set_tests_properties(custom_worker_install PROPERTIES LABELS "e2e;install" TIMEOUT 400)
