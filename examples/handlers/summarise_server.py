#!/usr/bin/env python3
"""summarise_server.py: summarise.py as a persistent co-process (exec-persistent:).

The same summaries as summarise.py, without paying for a Python start-up per topic: the worker
starts this once per slot and sends it one topic after another, as JSON Lines:

    topicflow run --workers 2 --concurrency 10 \
        --handler 'exec-persistent:python3 examples/handlers/summarise_server.py' \
        examples/topics.txt

The protocol (docs/handlers.md, "Persistent mode"), which topicflow.handler.run (python/topicflow)
speaks for us: summarise_topic() returns the result, raises Retry or ValueError:
  stdin    one request per line: {"job": J, "key": K, "attempt": N, "payload": "..."}
           ("payload_base64" instead of "payload" when the payload is not UTF-8)
  stdout   exactly one response line per request, flushed:
             {"status": "completed", "result": <any JSON; a string is stored as is>}
             {"status": "retry", "error": "..."}     retryable failure (as exit 75)
             {"status": "failed", "error": "..."}    permanent failure (as exit 1)
           Nothing else may go to stdout: logs go to stderr.
  EOF      on stdin: finish and exit (the worker is stopping).
  exit     mid-request: the task fails (a signal or exit 75: retryable), a new co-process is
           started for the next one.

Simulated trouble (off unless asked for), read from the environment at start-up:
  SUMMARISE_TEMPFAIL_ATTEMPTS=N   attempts 1..N of every topic answer "retry"
  SUMMARISE_TEMPFAIL_RATE=P       each attempt answers "retry" with probability P
  SUMMARISE_CRASH_ATTEMPTS=N      attempts 1..N of every topic kill this co-process (SIGKILL,
                                  as the OOM killer would) before answering
  SUMMARISE_STARTUP_MS=N          sleep N ms at start-up (a slow import, a model load)
"""

import os
import random
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# summarise.py beside this file; the topicflow package from the source tree (python/), so the
# example runs without installing it (an installed one is used when python/ is not there).
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "..", "python"))
import summarise  # noqa: E402  (the summarising logic, shared with the per-task handler)
from topicflow import Retry, handler  # noqa: E402  (the JSON Lines loop of exec-persistent)


def setting(name, kind, default, low, high):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = kind(raw)
    if not low <= value <= high:
        raise SystemExit(f"summarise_server: {name}={raw!r} is outside {low}..{high}")
    return value


TEMPFAIL_ATTEMPTS = setting("SUMMARISE_TEMPFAIL_ATTEMPTS", int, 0, 0, 1000)
TEMPFAIL_RATE = setting("SUMMARISE_TEMPFAIL_RATE", float, 0.0, 0.0, 1.0)
CRASH_ATTEMPTS = setting("SUMMARISE_CRASH_ATTEMPTS", int, 0, 0, 1000)
MAX_BYTES = setting("SUMMARISE_MAX_BYTES", int, 1 << 20, 1, 1 << 30)


def summarise_topic(task: handler.Task) -> dict:
    """One topic -> its summary (the result). Raises Retry (retryable) or ValueError
    (permanent, the message is the topic's error)."""
    key, attempt = task.key, task.attempt
    if attempt <= CRASH_ATTEMPTS:
        print(f"summarise_server: simulated crash on {key!r}, attempt {attempt}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if attempt <= TEMPFAIL_ATTEMPTS:
        raise Retry(f"simulated transient failure on attempt {attempt} of {TEMPFAIL_ATTEMPTS} asked for")
    if TEMPFAIL_RATE > 0 and random.random() < TEMPFAIL_RATE:
        raise Retry(f"simulated transient failure (SUMMARISE_TEMPFAIL_RATE={TEMPFAIL_RATE})")

    where = f" (key {key!r})"
    payload = task.payload
    if isinstance(payload, bytes):  # it came as payload_base64
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"summarise: payload is not valid UTF-8 (byte {e.start}){where}") from None
    if len(payload.encode("utf-8")) > MAX_BYTES:
        raise ValueError(f"summarise: payload is larger than {MAX_BYTES} bytes{where}")
    if not payload.strip():
        raise ValueError(f"summarise: empty payload: nothing to summarise{where}")
    try:
        summary = summarise.summarise(summarise.text_of(payload))
    except summarise.BadInput as e:
        raise ValueError(f"summarise: {e}{where}") from None
    return {"key": key, **summary}


def main():
    time.sleep(setting("SUMMARISE_STARTUP_MS", int, 0, 0, 600000) / 1000)
    handler.run(summarise_topic)  # until end of file on stdin


if __name__ == "__main__":
    main()
