# Fault tests: the real binaries as separate processes, killed, blocked and poisoned mid-run.
topicflow_system_test(fault_test LABEL fault TIMEOUT 180)
# Durability on the real binaries: fsyncs per commit (strace), a full disk (a tmpfs that fills
# and grows); each skips where it cannot do its damage.
topicflow_system_test(durability_test LABEL fault TIMEOUT 240)
