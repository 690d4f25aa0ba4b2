topicflow_test(sink_state_test topicflow::sink_core)
topicflow_test(sink_test topicflow::sink_core)
