# Unit tests of the broker core (broker/): label `unit`.
topicflow_test(broker_test topicflow::broker_core)
