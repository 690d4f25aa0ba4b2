"""Fixtures: the server under test (harness.py: real sink or fake, TOPICFLOW_TEST_SINK)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import job_name, make_server, server  # noqa: E402,F401
