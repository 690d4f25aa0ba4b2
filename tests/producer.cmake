# Unit tests of the producer core (producer/): label `unit`.
topicflow_test(input_test topicflow::producer_core)
topicflow_test(producer_test topicflow::producer_core)
