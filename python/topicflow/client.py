"""The HTTP client of topicflow's /v1 API (docs/api.md), standard library only.

    from topicflow import Client
    tf = Client("http://127.0.0.1:8080")
    tf.submit("nightly", ["first title", "second title"])
    final = tf.wait("nightly", on_progress=print)

Not thread-safe to share a generator (``topics``, ``events``) between threads; the ``Client``
itself holds no connection and may be used from several threads.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import sse
from .errors import TopicflowError, WaitTimeout

__all__ = ["Client", "TopicItem"]

COUNT_FIELDS = ("accepted", "duplicates", "skipped_completed", "skipped_failed", "already_queued",
                "requeued")

#: A topic for ``submit``: a key (key = payload, as a line of a text file), a
#: ``(key, payload)`` pair (payload: str, bytes, or any JSON value), or a dict as the API takes.
TopicItem = str | tuple[str, Any] | Mapping[str, Any]


def _as_item(item: TopicItem) -> dict[str, Any]:
    if isinstance(item, str):
        return {"key": item, "payload": item}
    if isinstance(item, tuple) and len(item) == 2:
        key, payload = item
        if isinstance(payload, (bytes, bytearray, memoryview)):
            return {"key": key, "payload_base64": base64.b64encode(payload).decode("ascii")}
        return {"key": key, "payload": payload}
    if isinstance(item, Mapping) and "key" in item:
        return dict(item)
    raise TypeError(f"a topic is a key, a (key, payload) pair or a dict with a key, not {item!r}")


class Client:
    """A topicflow sink's HTTP API.

    Args:
        url: the sink's HTTP address, e.g. ``http://127.0.0.1:8080``.
        token: the bearer token for writes (``--http-token-file`` on the sink), if any.
        timeout: seconds to wait for an answer (``topic(wait=)`` and ``events`` add to it).

    Every method raises ``TopicflowError`` when the request fails.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # --- jobs ----------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """All jobs, by name: dicts with job, pending, running, completed, failed, cancelled,
        total, paused."""
        return self._call("GET", ["jobs"])["jobs"]

    def job(self, job: str) -> dict[str, Any]:
        """One job's counts (404 when it has no topics)."""
        return self._call("GET", ["jobs", job])

    def submit(self, job: str, topics: Iterable[TopicItem], chunk_size: int = 1000
               ) -> dict[str, Any]:
        """Registers topics in requests of ``chunk_size``; returns the summed answer
        (accepted, duplicates, skipped_completed, skipped_failed, already_queued, requeued, rejected
        with indexes into ``topics``). Reads ``topics`` lazily, one chunk at a time.

        Each chunk is committed on its own: if one fails, the TopicflowError's ``counts``
        says what the earlier chunks registered (submitting again is safe: idempotent by key).
        A key repeated in two chunks counts as ``already_queued`` (or skipped), not duplicate.
        """
        if not 1 <= chunk_size <= 100_000:
            raise ValueError("chunk_size must be 1 to 100000")
        totals: dict[str, Any] = {name: 0 for name in COUNT_FIELDS}
        totals["rejected"] = []
        items = map(_as_item, topics)
        offset = 0
        while chunk := list(itertools.islice(items, chunk_size)):
            try:
                answer = self._call("POST", ["jobs", job, "topics"], body=chunk)
            except TopicflowError as e:
                if offset:
                    e.error += f" (in the chunk starting at topic {offset})"
                e.counts = totals
                raise
            for name in COUNT_FIELDS:
                totals[name] += answer.get(name, 0)
            for rejected in answer.get("rejected", []):
                totals["rejected"].append({**rejected, "index": rejected["index"] + offset})
            offset += len(chunk)
        return totals

    def pause(self, job: str) -> dict[str, Any]:
        """Stops dispatching the job's topics (running ones finish); returns the job."""
        return self._call("POST", ["jobs", job, "pause"])

    def resume(self, job: str) -> dict[str, Any]:
        """Dispatches a paused job's topics again; returns the job."""
        return self._call("POST", ["jobs", job, "resume"])

    def cancel(self, job: str) -> dict[str, Any]:
        """Cancels every pending and running topic; the job's ``changed`` says how many."""
        return self._call("POST", ["jobs", job, "cancel"])

    def retry_failed(self, job: str) -> dict[str, Any]:
        """Puts the job's failed topics back to pending with fresh attempts (``changed``)."""
        return self._call("POST", ["jobs", job, "retry-failed"])

    def delete(self, job: str) -> dict[str, Any]:
        """Removes a job whose topics are all terminal (409 otherwise): ``{job, deleted}``."""
        return self._call("DELETE", ["jobs", job])

    def workers(self) -> list[dict[str, Any]]:
        """Workers heard from within one lease: id, slots, running, last_heard_ms."""
        return self._call("GET", ["workers"])["workers"]

    # --- topics --------------------------------------------------------------------------

    def page(self, job: str, status: str | None = None, after: str | None = None,
             start: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of topics in key order: ``{"topics": [...], "next": cursor or None}``.
        ``after``: the previous page's ``next``; ``start``: begin at this key (inclusive)."""
        query = {"status": status, "after": after, "from": start, "limit": limit}
        return self._call("GET", ["jobs", job, "topics"], query=query)

    def topics(self, job: str, status: str | None = None, start: str | None = None,
               page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every topic of the job (optionally one status), page by page, in key order."""
        page = self.page(job, status, start=start, limit=page_size)
        while True:
            yield from page["topics"]
            if page["next"] is None:
                return
            page = self.page(job, status, after=page["next"], limit=page_size)

    def topic(self, job: str, key: str, wait: float | None = None) -> dict[str, Any]:
        """One topic with payload, result, error, worker and times. With ``wait`` (seconds,
        at most 60) the answer comes once it is terminal, or at the deadline as it is."""
        query = {"wait": f"{wait:g}"} if wait else None
        return self._call("GET", ["jobs", job, "topics", key], query=query,
                          timeout=self.timeout + (wait or 0))

    # --- live ----------------------------------------------------------------------------

    def events(self, job: str | None = None, timeout: float | None = None
               ) -> Iterator[sse.Event]:
        """Server-Sent Events of ``/v1/events``: the current state first (a "job" event per
        job, a "sink" event), then changes. Ends when the server closes the stream; raises
        TopicflowError when nothing arrives within ``timeout`` (default: max(timeout, 60) s;
        the sink sends something at least every 15 s)."""
        read_timeout = timeout or max(self.timeout, 60.0)
        response = self._open("GET", ["events"], {"job": job}, None, read_timeout,
                              accept="text/event-stream")
        try:
            yield from sse.parse(response)
        except (OSError, http.client.HTTPException) as e:
            raise TopicflowError(None, f"event stream broken: {e}", "GET", response.url) from e
        finally:
            response.close()

    def wait(self, job: str, on_progress: Callable[[dict[str, Any]], None] | None = None,
             timeout: float | None = None, poll_interval: float = 1.0) -> dict[str, Any]:
        """Blocks until nothing of the job is pending or running; returns its final counts.

        Follows ``events(job)``; polls ``job(job)`` every ``poll_interval`` s while the event
        stream is unavailable. ``on_progress(job_dict)`` is called with every state seen.
        Raises WaitTimeout (a TopicflowError and a TimeoutError) after ``timeout`` s, and
        TopicflowError 404 when the job does not exist or is deleted meanwhile. A paused job
        with pending topics waits until it is resumed (or the timeout).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: dict[str, Any] = self.job(job)
        state: dict[str, Any] | None = last
        stream: Iterator[dict[str, Any] | None] | None = None
        use_events = True
        try:
            while True:
                if state is not None:
                    if on_progress is not None:
                        on_progress(state)
                    if state["pending"] == 0 and state["running"] == 0:
                        return state
                    last = state
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(last, f"job {job!r} still has {last['pending']} "
                                            f"pending and {last['running']} running "
                                            f"after {timeout} s")
                if stream is None and use_events:
                    stream = self._job_states(job, 20.0 if left is None else min(left, 20.0))
                if stream is not None:
                    try:
                        state = next(stream)  # None: another event (a tick to check the time)
                        continue
                    except StopIteration:
                        stream = None  # the server closed it: reconnect (current state first)
                    except TopicflowError as e:
                        if e.error.startswith("job deleted"):
                            raise
                        stream = None
                        use_events = e.status is None  # no SSE at all (404...): poll only
                pause = poll_interval if left is None else min(poll_interval, left)
                time.sleep(max(0.0, pause))
                state = self.job(job)
        finally:
            if stream is not None:
                stream.close()  # type: ignore[attr-defined]

    def _job_states(self, job: str, read_timeout: float) -> Iterator[dict[str, Any] | None]:
        """The states of ``job`` on one event stream (the first is the current state), and
        None for any other event (the sink's, every second: the caller's clock tick)."""
        for event in self.events(job, timeout=max(0.1, read_timeout)):
            if not isinstance(event.data, dict) or event.data.get("job") != job:
                yield None
            elif event.type == "job":
                yield event.data
            elif event.type == "deleted":
                raise TopicflowError(404, f"job deleted while waiting: {job!r}")

    # --- HTTP ----------------------------------------------------------------------------

    def url_of(self, parts: list[str], query: Mapping[str, Any] | None = None) -> str:
        """``/v1/`` + the percent-encoded parts (a ``/`` in a name is ``%2F``) + the query."""
        path = "/".join(_segment(part) for part in parts)
        url = f"{self.url}/v1/{path}"
        query = {k: v for k, v in (query or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return url

    def _call(self, method: str, parts: list[str], query: Mapping[str, Any] | None = None,
              body: Any = None, timeout: float | None = None) -> Any:
        response = self._open(method, parts, query, body, timeout or self.timeout)
        with response:
            try:
                return json.loads(response.read())
            except (OSError, ValueError, http.client.HTTPException) as e:
                raise TopicflowError(response.status, f"unreadable answer: {e}", method,
                                     response.url) from e

    def _open(self, method: str, parts: list[str], query: Mapping[str, Any] | None,
              body: Any, timeout: float, accept: str = "application/json"
              ) -> http.client.HTTPResponse:
        url = self.url_of(parts, query)
        headers = {"Accept": accept, "User-Agent": "topicflow-python/0.1"}
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/json"
            data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            with e:
                raise TopicflowError(e.code, _reason(e), method, url) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise TopicflowError(None, f"no answer: {reason}", method, url) from e


def _segment(part: str) -> str:
    """One percent-encoded path segment; "." and ".." as %2E so that no client or proxy on the
    way takes them for dot segments (browsers still do: WHATWG URLs treat %2E as a dot)."""
    if part in (".", ".."):
        return part.replace(".", "%2E")
    return urllib.parse.quote(part, safe="")


def _reason(e: urllib.error.HTTPError) -> str:
    """The server's ``{"error": ...}``, or the start of whatever else it sent."""
    try:
        text = e.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        text = ""
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip()[:200] or str(e.reason)
