# `cmake --install`: the binaries (each role's CMakeLists installs its own), and the handler SDK
# for custom worker binaries: the public headers, libtopicflow_common.a,
# libtopicflow_worker_core.a and the CMake package `topicflow` (targets topicflow::common and
# topicflow::worker_core). examples/custom-worker/ builds against an installed tree; the
# custom_worker_install test (tests/install.cmake) checks that it does.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TOPICFLOW_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/topicflow)

install(DIRECTORY ${topicflow_SOURCE_DIR}/common/include/topicflow
                  ${topicflow_SOURCE_DIR}/worker/include/topicflow
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS topicflow_common topicflow_worker_core
        EXPORT topicflowTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT topicflowTargets
        NAMESPACE topicflow::
        DESTINATION ${TOPICFLOW_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/topicflowConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/topicflowConfig.cmake
  INSTALL_DESTINATION ${TOPICFLOW_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/topicflowConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)  # 0.x: a new minor version may change the SDK
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/topicflowConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/topicflowConfigVersion.cmake
        DESTINATION ${TOPICFLOW_CMAKE_DIR})
