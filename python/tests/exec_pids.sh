#!/bin/sh
# The exec handler of the cancel tests (topicflow-worker --handler 'exec:sh exec_pids.sh').
# Payload "hang...": starts a child that sleeps for a minute, writes "SHELL_PID CHILD_PID" to
# $TOPICFLOW_TEST_STATE_DIR/pids-<sha256 of the key> (renamed into place, so a reader never
# sees half of it) and waits for the child: only a kill of the whole process group ends it
# early. Any other payload: printed upper-cased (the result).
payload=$(cat)
case $payload in
  hang*)
    sleep 60 &
    child=$!
    name=$(printf '%s' "$TOPICFLOW_KEY" | sha256sum | cut -c1-64)
    file="${TOPICFLOW_TEST_STATE_DIR:-/tmp}/pids-$name"
    echo "$$ $child" > "$file.tmp" && mv "$file.tmp" "$file"
    wait "$child"
    echo "the child ended on its own"
    ;;
  *)
    printf '%s' "$payload" | tr '[:lower:]' '[:upper:]'
    ;;
esac
