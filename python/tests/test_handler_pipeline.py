"""topicflow.handler in the real pipeline (`topicflow run` with exec-persistent): results,
permanent and retryable failures as the worker records them. Needs the binaries, not HTTP."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from harness import HERE, bin_dir

BINS = bin_dir()
pytestmark = pytest.mark.skipif(BINS is None, reason="no topicflow binaries (build first)")


def test_handler_results_and_failures_through_the_worker(tmp_path):
    topics = tmp_path / "topics.jsonl"
    topics.write_text("".join(json.dumps({"key": k, "payload": p}) + "\n" for k, p in [
        ("ok", "hello"), ("json", {"n": 1}), ("bad", "fail now"), ("later", "retry")]))
    db = tmp_path / "t.db"
    handler = f"exec-persistent:exec {sys.executable} {HERE / 'behaviour_handler.py'}"
    run = subprocess.run(
        [str(BINS / "topicflow"), "run", "--db", str(db), "--progress", "none", "--workers", "1",
         "--concurrency", "2", "--max-attempts", "2", "--retry-base-ms", "10",
         "--retry-max-ms", "50", "--handler", handler, str(topics)],
        capture_output=True, text=True, timeout=240,
        # (a minimal environment, but the sanitizer presets' options pass: their suppressions and
        # report files)
        env={"TOPICFLOW_TEST_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
             **{k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")}})
    assert run.returncode == 1, run.stderr  # some failed
    with sqlite3.connect(db) as con:
        rows = {k: (s, a, r.decode() if isinstance(r, bytes) else r, e) for k, s, a, r, e in
                con.execute("SELECT key, status, attempts, result, error FROM topics")}
    assert rows["ok"] == ("completed", 1, "HELLO", None)
    assert rows["json"] == ("completed", 1, '{"N":1}', None)
    assert rows["bad"][:2] == ("failed", 1) and "failed on purpose: fail now" in rows["bad"][3]
    assert rows["later"][:2] == ("failed", 2) and "try again later" in rows["later"][3]
