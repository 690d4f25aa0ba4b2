# Compose suite: builds docker/Dockerfile and runs docker-compose.yml for real (podman through
# ../shared/tools/container-env, as root), asserting the database on the sink's volume. Slow (it
# builds the image) and machine-wide (containers, a podman API socket), so it carries only the
# `compose` label and runs alone: ctest -L compose. It exits 77 (skipped) when the shared tool is
# absent.
add_test(NAME compose_stack COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/compose/compose_test.sh)
set_tests_properties(compose_stack PROPERTIES
  LABELS compose
  TIMEOUT 3600
  SKIP_RETURN_CODE 77
  RUN_SERIAL TRUE)
