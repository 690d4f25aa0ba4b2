"""What a test topic does, decided by its payload: one definition for the fake sink's simulated
workers and for the real workers' exec-persistent handler (behaviour_handler.py), so every test
runs the same against both.

Payload rules (a payload is text; anything else completes as it is):
  "sleep:MS rest"  sleep MS milliseconds (woken early by a cancel), then apply "rest"
  "fail ..."       permanent failure, error "failed on purpose: <payload>"
  "flaky ..."      fails (permanently) the first time this key is seen in STATE_DIR, then completes
  "retry ..."      a retryable failure on every attempt
  "hang ..."       runs until cancelled (at most 120 s), then completes
  anything else    completes with the payload upper-cased as its result
  (binary)         completes with "N bytes"
"""

from __future__ import annotations

import hashlib
import os
import threading


class RetryLater(Exception):
    """A retryable failure (the handler side's topicflow.Retry, without importing it here)."""


def _marker(state_dir: str, job: str, key: str) -> str:
    digest = hashlib.sha256(f"{job}\0{key}".encode()).hexdigest()
    return os.path.join(state_dir, "seen-" + digest)


def run(job: str, key: str, payload: str | bytes, state_dir: str,
        cancelled: threading.Event | None = None) -> str:
    """Runs one topic; returns its result or raises (RetryLater: retryable; others: failed)."""
    cancelled = cancelled or threading.Event()
    if isinstance(payload, bytes):
        return f"{len(payload)} bytes"
    text = payload
    if text.startswith("sleep:"):
        head, _, text = text.partition(" ")
        cancelled.wait(int(head[len("sleep:"):]) / 1000)
    if text.startswith("fail"):
        raise ValueError(f"failed on purpose: {payload}")
    if text.startswith("retry"):
        raise RetryLater(f"try again later: {payload}")
    if text.startswith("flaky"):
        marker = _marker(state_dir, job, key)
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8"):
                pass
            raise ValueError(f"flaky: first attempt fails ({key})")
    if text.startswith("hang"):
        cancelled.wait(120)
    return text.upper()
