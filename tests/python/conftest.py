"""Fixtures: the server under test (python/tests/harness.py: real sink or fake)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python" / "tests"))

from harness import job_name, make_server, server  # noqa: E402,F401
