# Unit tests of the front door (cli/) and its process helper (common/src/process.cpp): label `unit`.
topicflow_test(process_test topicflow::common)
# The README's flag tables against the binaries (scripts/readme-flags.py --check): a flag in a
# binary and not in its README table, or the reverse, fails. Needs the built binaries.
add_test(NAME readme_flags
  COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/readme-flags.py --check --bin ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(readme_flags PROPERTIES LABELS unit TIMEOUT 60)
topicflow_test(run_options_test topicflow::cli_core)
topicflow_test(supervisor_test topicflow::cli_core)
