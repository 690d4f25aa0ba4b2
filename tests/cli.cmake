# Unit tests of the front door (cli/) and its process helper (common/src/process.cpp): label `unit`.
topicflow_test(process_test topicflow::common)
