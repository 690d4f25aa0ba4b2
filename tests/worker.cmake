# Unit tests of the worker core (worker/): label `unit`.
topicflow_test(handler_test topicflow::worker_core)
topicflow_test(worker_test topicflow::worker_core)
topicflow_test(run_worker_test topicflow::worker_core)
topicflow_test(persistent_exec_test topicflow::worker_core)
topicflow_test(handler_pool_test topicflow::worker_core)
topicflow_test(report_buffer_test topicflow::worker_core)
topicflow_test(orphan_reaper_test topicflow::worker_core)
