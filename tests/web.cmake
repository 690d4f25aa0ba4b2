# Web and Python (issue 13): the dashboard compiled into the sink (unit), the Python client and
# the Flask example (label `python`), and the dashboard in headless Chromium (label `browser`).
# The pytest suites start their own sink, broker and workers from ${CMAKE_BINARY_DIR}/bin
# (python/tests/harness.py). TOPICFLOW_WEB_TEST_SINK=fake runs them against
# python/tests/fake_sink.py instead (dashboard development without a build); auto picks the
# real sink when its --help lists --http-port.
set(TOPICFLOW_WEB_TEST_SINK "real" CACHE STRING "server under the web/Python tests: real, fake or auto")

# The embedded dashboard: find_asset() serves every file of sink/web/ with its type.
include(${topicflow_SOURCE_DIR}/sink/web/assets.cmake)
add_executable(web_assets_test ${CMAKE_CURRENT_LIST_DIR}/web_assets_test.cpp)
target_link_libraries(web_assets_test PRIVATE topicflow::web_assets GTest::gtest_main topicflow_warnings)
target_compile_definitions(web_assets_test PRIVATE TOPICFLOW_WEB_DIR="${TOPICFLOW_WEB_DIR}")
gtest_discover_tests(web_assets_test PROPERTIES LABELS unit TIMEOUT 60 DISCOVERY_TIMEOUT 60)

set(_web_runner ${CMAKE_CURRENT_LIST_DIR}/python/run_pytest.sh)
set(_web_env
  "TOPICFLOW_BIN_DIR=${CMAKE_BINARY_DIR}/bin"
  "TOPICFLOW_TEST_SINK=${TOPICFLOW_WEB_TEST_SINK}")

# topicflow_pytest(NAME LABEL label TIMEOUT seconds ARGS runner-args...)
function(topicflow_pytest name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "LABEL;TIMEOUT" "ARGS")
  add_test(NAME ${name} COMMAND ${_web_runner} ${arg_ARGS}
           WORKING_DIRECTORY ${topicflow_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES LABELS ${arg_LABEL} TIMEOUT ${arg_TIMEOUT}
                       SKIP_RETURN_CODE 77 ENVIRONMENT "${_web_env}")
endfunction()

# The Python client (python/topicflow) and the handler helper: python/tests.
topicflow_pytest(python_client LABEL python TIMEOUT 600 ARGS ${topicflow_SOURCE_DIR}/python/tests)
# examples/flask-app end to end.
topicflow_pytest(flask_example LABEL python TIMEOUT 300 ARGS ${topicflow_SOURCE_DIR}/tests/python)
# The dashboard as a person uses it; exit 77 (skipped) only where Chromium is absent.
topicflow_pytest(dashboard_browser LABEL browser TIMEOUT 900
                 ARGS --browser ${topicflow_SOURCE_DIR}/tests/browser)
