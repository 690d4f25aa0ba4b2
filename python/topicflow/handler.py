"""Run a Python function as an ``exec-persistent`` handler (docs/handlers.md, "Persistent
mode"): the JSON Lines loop, one response line per request.

    # my_handler.py  --  topicflow-worker --handler 'exec-persistent:exec python3 my_handler.py'
    from topicflow import Retry, handler

    def summarise(task: handler.Task) -> dict:
        if not task.payload.strip():
            raise ValueError("empty payload")        # permanent failure, with this message
        if service_busy():
            raise Retry("the service is busy")       # retryable failure
        return {"words": len(task.payload.split())}  # the result (a str is stored as is)

    handler.run(summarise)

The function gets a ``Task`` (job, key, attempt, payload: str, or bytes when the payload is not
UTF-8). Its return value is the result: a str as is, bytes decoded as UTF-8, None as "", any
other JSON value as its JSON text. ``Retry`` is a retryable failure; any other exception is a
permanent failure whose error is "ExceptionType: message" (a ValueError/RuntimeError: the
message alone). Stdout is the protocol: ``run`` sends anything the function prints to stderr.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, TextIO

__all__ = ["Retry", "Task", "run", "respond"]

#: Exceptions whose message alone is the error (their type adds nothing for an operator).
PLAIN_ERRORS = (ValueError, RuntimeError)


class Retry(Exception):
    """Raised by a handler function: this attempt failed, try again later (as exit 75)."""


@dataclass(frozen=True)
class Task:
    """One request: the topic's job, key, attempt (1 for the first delivery) and payload."""

    job: str
    key: str
    attempt: int
    payload: str | bytes


def task_of(request: dict[str, Any]) -> Task:
    if "payload_base64" in request:
        payload: str | bytes = base64.b64decode(request["payload_base64"])
    else:
        payload = request.get("payload", "")
    return Task(str(request.get("job", "")), str(request.get("key", "")),
                int(request.get("attempt", 1)), payload)


def respond(function: Callable[[Task], Any], request: dict[str, Any]) -> dict[str, Any]:
    """One request -> one response dict (never raises for the function's errors)."""
    try:
        result = function(task_of(request))
    except Retry as e:
        return {"status": "retry", "error": str(e) or "retry"}
    except Exception as e:  # noqa: BLE001  (the function's failure is the topic's error)
        text = str(e) if isinstance(e, PLAIN_ERRORS) and str(e) else f"{type(e).__name__}: {e}"
        return {"status": "failed", "error": text}
    if result is None:
        result = ""
    elif isinstance(result, (bytes, bytearray)):
        try:
            result = bytes(result).decode("utf-8")
        except UnicodeDecodeError:
            return {"status": "failed",
                    "error": "result is not UTF-8 (exec-persistent results are text)"}
    return {"status": "completed", "result": result}


def run(function: Callable[[Task], Any], stdin: TextIO | None = None,
        stdout: TextIO | None = None) -> None:
    """Answers requests from stdin until end of file (the worker stopping), one flushed line
    each. A line that is not a JSON object is answered with a permanent failure. What the
    function prints goes to stderr, so it cannot break the protocol."""
    source = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    for line in source:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            response: dict[str, Any] = {"status": "failed", "error": f"bad request line: {e}"}
        else:
            with contextlib.redirect_stdout(sys.stderr):
                response = respond(function, request)
        try:
            text = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            text = json.dumps({"status": "failed", "error": f"result is not JSON: {e}"})
        out.write(text + "\n")
        out.flush()
