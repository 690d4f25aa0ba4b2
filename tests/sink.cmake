topicflow_test(sink_state_test topicflow::sink_core)
topicflow_test(sink_test topicflow::sink_core)

# topicflow_sink_unit_test(NAME [LIBS...]): a unit test of one of the sink core's units; their
# headers (sink/src/*.hpp) are private to the core and its unit tests.
function(topicflow_sink_unit_test name)
  topicflow_test(${name} topicflow::sink_core ${ARGN})
  if(TARGET ${name})
    target_include_directories(${name} PRIVATE ${topicflow_SOURCE_DIR}/sink/src)
  endif()
endfunction()

topicflow_sink_unit_test(batch_test)
topicflow_sink_unit_test(ready_queue_test)
topicflow_sink_unit_test(rows_in_flight_test)
topicflow_sink_unit_test(dispatch_window_test)
topicflow_sink_unit_test(job_progress_test)
topicflow_sink_unit_test(sink_metrics_test)
topicflow_sink_unit_test(topic_table_test)
topicflow_sink_unit_test(scheduler_test SQLite::SQLite3)  # interrupts a read (progress handler)
topicflow_sink_unit_test(batch_writer_test SQLite::SQLite3)  # counts SELECTs (sqlite3_trace_v2)
topicflow_sink_unit_test(transit_timeout_test)
topicflow_sink_unit_test(database_state_test)
