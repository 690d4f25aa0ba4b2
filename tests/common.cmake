# Unit tests of the common library (common/): one binary per unit, label `unit`.
foreach(unit wire utf8 backoff sqlite store config shutdown log curve random_id sockets)
  topicflow_test(${unit}_test topicflow::common)
endforeach()
# The SQLite tests talk to SQLite directly (a second connection holding locks, raw pragmas).
foreach(test sqlite_test store_test)
  if(TARGET ${test})
    target_link_libraries(${test} PRIVATE SQLite::SQLite3)
  endif()
endforeach()
# The wire tests craft hostile frames by hand with msgpack (header-only, needs the Boost headers).
if(TARGET wire_test)
  target_link_libraries(wire_test PRIVATE msgpackc-cxx)
endif()
