# Fault tests: the real binaries as separate processes, killed, blocked and poisoned mid-run.
topicflow_system_test(fault_test LABEL fault TIMEOUT 180)
