#!/usr/bin/env python3
"""The real workers' handler in the tests: behaviour.run() as an exec-persistent co-process,
through topicflow.handler (so the tests exercise it too). State dir: $TOPICFLOW_TEST_STATE_DIR."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import behaviour  # noqa: E402
from topicflow import Retry, handler  # noqa: E402

STATE_DIR = os.environ.get("TOPICFLOW_TEST_STATE_DIR", "/tmp")


def handle(task: handler.Task) -> str:
    try:
        return behaviour.run(task.job, task.key, task.payload, STATE_DIR)
    except behaviour.RetryLater as e:
        raise Retry(str(e)) from e


if __name__ == "__main__":
    handler.run(handle)
