"""The fake sink's state: jobs and topics in memory, simulated workers, and the progress events
that /v1/events streams. Thread-safe: one lock guards everything (a development double, not a
model of the real sink's performance). Semantics follow docs/api.md."""

from __future__ import annotations

import base64
import bisect
import collections
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import behaviour

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")


def now_ms() -> int:
    return int(time.time() * 1000)


class ApiError(Exception):
    """An HTTP error answer: status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Topic:
    key: str
    payload: bytes
    status: str = "pending"
    attempts: int = 0
    result: bytes | None = None
    error: str | None = None
    worker: str | None = None
    created_at: int = field(default_factory=now_ms)
    updated_at: int = field(default_factory=now_ms)
    cancel: threading.Event | None = None  # set while running


@dataclass
class Job:
    name: str
    paused: bool = False
    topics: dict[str, Topic] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # sorted: str order = UTF-8 byte order
    counts: collections.Counter = field(default_factory=collections.Counter)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.name}
        out.update({s: self.counts[s] for s in STATUSES})
        out["total"] = len(self.topics)
        out["paused"] = self.paused
        return out


class Store:
    """All state of the fake; simulated workers pull from `ready` in submission order."""

    def __init__(self, workers: int, slots: int, max_attempts: int, state_dir: str,
                 sink_event_ms: int) -> None:
        self.lock = threading.Condition()
        self.jobs: dict[str, Job] = {}
        self.ready: collections.deque[tuple[str, str]] = collections.deque()
        self.max_attempts = max_attempts
        self.state_dir = state_dir
        self.sink_event_ms = sink_event_ms
        self.worker_ids = [f"fake-{i + 1}" for i in range(workers)]
        self.slots = slots
        self.updates = 0
        self.batches = 0
        self.subscribers: list[tuple[str | None, queue.Queue]] = []
        self.dirty: dict[str, float] = {}  # job -> time of its last change not yet published
        self.sent: dict[str, float] = {}  # job -> time of its last published event
        self.stopping = threading.Event()
        for worker in self.worker_ids:
            for slot in range(slots):
                threading.Thread(target=self._work, args=(worker,), daemon=True,
                                 name=f"{worker}/{slot}").start()
        threading.Thread(target=self._publish_loop, daemon=True, name="events").start()

    # --- changes (callers hold the lock) -------------------------------------------------

    def _set(self, job: Job, topic: Topic, status: str) -> None:
        job.counts[topic.status] -= 1
        job.counts[status] += 1
        topic.status = status
        topic.updated_at = now_ms()
        self._changed(job)

    def _changed(self, job: Job) -> None:
        self.updates += 1
        self.dirty.setdefault(job.name, time.monotonic())
        self.lock.notify_all()

    def job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None or not job.topics:
            raise ApiError(404, f"no job {name!r}")
        return job

    def submit(self, name: str, items: list[tuple[str, bytes]]) -> dict[str, Any]:
        counts = dict(accepted=0, duplicates=0, skipped_completed=0, skipped_failed=0,
                      already_queued=0, requeued=0)
        seen: set[str] = set()
        with self.lock:
            job = self.jobs.setdefault(name, Job(name))
            for key, payload in items:
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                topic = job.topics.get(key)
                if topic is None:
                    topic = job.topics[key] = Topic(key, payload)
                    bisect.insort(job.keys, key)
                    job.counts["pending"] += 1
                elif topic.status == "completed":
                    counts["skipped_completed"] += 1
                    continue
                elif topic.status == "failed":
                    counts["skipped_failed"] += 1
                    continue
                elif topic.status in ("pending", "running"):
                    counts["already_queued"] += 1
                    continue
                else:  # cancelled: new work, with a fresh budget (attempt numbers go on)
                    topic.payload, topic.result, topic.error = payload, None, None
                    self._set(job, topic, "pending")
                    counts["requeued"] += 1
                    self.ready.append((name, key))
                    continue
                counts["accepted"] += 1
                self.ready.append((name, key))
            if counts["accepted"]:
                self._changed(job)
                self.batches += 1
        return {**counts, "rejected": []}

    def set_paused(self, name: str, paused: bool) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            if job.paused != paused:
                job.paused = paused
                self._changed(job)
                if not paused:
                    self.ready.extend((name, k) for k in job.keys
                                      if job.topics[k].status == "pending")
            return {**job.view(), "changed": 0}

    def cancel(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            changed = 0
            for topic in job.topics.values():
                if topic.status in ("pending", "running"):
                    if topic.cancel is not None:
                        topic.cancel.set()
                    self._set(job, topic, "cancelled")
                    changed += 1
            return {**job.view(), "changed": changed}

    def retry_failed(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            changed = 0
            for key in job.keys:
                topic = job.topics[key]
                if topic.status == "failed":
                    topic.attempts = 0
                    self._set(job, topic, "pending")
                    self.ready.append((name, key))
                    changed += 1
            return {**job.view(), "changed": changed}

    def delete(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            busy = job.counts["pending"] + job.counts["running"]
            if busy:
                raise ApiError(409, f"job {name!r} has {busy} topics pending or running")
            del self.jobs[name]
            self.dirty.pop(name, None)
            self._broadcast(name, "deleted", {"job": name})
            return {"job": name, "deleted": len(job.topics)}

    def wait_idle(self, timeout: float = 60) -> None:
        """Until nothing is pending or running (or no worker could run it)."""
        with self.lock:
            self.lock.wait_for(lambda: not self.worker_ids or all(
                j.counts["pending"] + j.counts["running"] == 0 for j in self.jobs.values()),
                timeout)

    # --- reads ---------------------------------------------------------------------------

    def page(self, name: str, status: str | None, after: str | None, start: str | None,
             limit: int) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            if after is not None:
                i = bisect.bisect_right(job.keys, after)
            else:
                i = bisect.bisect_left(job.keys, start) if start is not None else 0
            rows: list[dict[str, Any]] = []
            while i < len(job.keys) and len(rows) < limit:
                topic = job.topics[job.keys[i]]
                i += 1
                if status is None or topic.status == status:
                    rows.append({"key": topic.key, "status": topic.status,
                                 "attempts": topic.attempts, "updated_at": topic.updated_at,
                                 "error": topic.error})
            more = False
            while len(rows) == limit and not more and i < len(job.keys):
                more = status is None or job.topics[job.keys[i]].status == status
                i += 1
            return {"topics": rows, "next": rows[-1]["key"] if rows and more else None}

    def topic(self, name: str, key: str, wait: float | None) -> dict[str, Any]:
        deadline = time.monotonic() + (wait or 0)
        with self.lock:
            while True:
                job = self.jobs.get(name)
                topic = job.topics.get(key) if job else None
                if topic is None:
                    raise ApiError(404, f"no topic {key!r} in job {name!r}")
                left = deadline - time.monotonic()
                if topic.status in TERMINAL or left <= 0:
                    return topic_view(name, topic)
                self.lock.wait(left)

    def workers(self) -> list[dict[str, Any]]:
        with self.lock:
            running = collections.Counter(t.worker for j in self.jobs.values()
                                          for t in j.topics.values() if t.status == "running")
            return [{"id": w, "slots": self.slots, "running": running[w], "last_heard_ms": 100}
                    for w in self.worker_ids]

    # --- simulated workers ---------------------------------------------------------------

    def _next_task(self, worker: str) -> tuple[Job, Topic] | None:
        with self.lock:
            while not self.stopping.is_set():
                while self.ready:
                    name, key = self.ready.popleft()
                    job = self.jobs.get(name)
                    topic = job.topics.get(key) if job else None
                    if topic is None or topic.status != "pending" or job.paused:
                        continue  # a paused job's topics are queued again on resume
                    topic.attempts += 1
                    topic.worker = worker
                    topic.cancel = threading.Event()
                    self._set(job, topic, "running")
                    return job, topic
                self.lock.wait(0.5)
        return None

    def _work(self, worker: str) -> None:
        while (task := self._next_task(worker)) is not None:
            job, topic = task
            attempt, cancel = topic.attempts, topic.cancel
            assert cancel is not None
            result: bytes | None = None
            error: str | None = None
            status = "completed"
            try:
                payload: str | bytes = topic.payload
                try:
                    payload = topic.payload.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                result = behaviour.run(job.name, topic.key, payload, self.state_dir,
                                       cancel).encode()
            except behaviour.RetryLater as e:
                status, error = ("pending" if attempt < self.max_attempts else "failed"), str(e)
            except Exception as e:  # noqa: BLE001 (a handler's failure, recorded)
                status, error = "failed", str(e)
            with self.lock:
                if topic.status == "running" and topic.attempts == attempt \
                        and self.jobs.get(job.name) is job:
                    self._finish(job, topic, status, result, error)
                # else: cancelled (or deleted) meanwhile: the late result is ignored

    def _finish(self, job: Job, topic: Topic, status: str, result: bytes | None,
                error: str | None) -> None:
        topic.result, topic.error, topic.cancel = result, error, None
        self._set(job, topic, status)
        self.batches += 1
        if status == "pending":
            self.ready.append((job.name, topic.key))

    # --- events --------------------------------------------------------------------------

    def subscribe(self, job: str | None) -> queue.Queue:
        """A queue of (event, data) for one SSE client, primed with the current state."""
        q: queue.Queue = queue.Queue()
        with self.lock:
            for name in sorted(self.jobs):
                if job is None or job == name:
                    q.put(("job", {**self.jobs[name].view(), "time_ms": now_ms()}))
            q.put(("sink", self._sink_view()))
            self.subscribers.append((job, q))
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self.lock:
            self.subscribers = [(j, s) for j, s in self.subscribers if s is not q]

    def _broadcast(self, job: str | None, event: str, data: dict[str, Any]) -> None:
        for wanted, q in self.subscribers:
            if wanted is None or job is None or wanted == job:
                q.put((event, data))

    def _sink_view(self) -> dict[str, Any]:
        return {"time_ms": now_ms(), "workers": len(self.worker_ids),
                "slots": len(self.worker_ids) * self.slots, "in_transit": 0,
                "updates_committed": self.updates, "batches_committed": self.batches,
                "healthy": True, "reason": ""}

    def _publish_loop(self) -> None:
        """A job's event at most every 250 ms (and always its final state); sink every N ms."""
        next_sink = time.monotonic()
        while not self.stopping.wait(0.05):
            now = time.monotonic()
            with self.lock:
                for name in list(self.dirty):
                    if now - self.sent.get(name, 0) >= 0.25 and name in self.jobs:
                        del self.dirty[name]
                        self.sent[name] = now
                        self._broadcast(name, "job",
                                        {**self.jobs[name].view(), "time_ms": now_ms()})
                if now >= next_sink:
                    next_sink = now + self.sink_event_ms / 1000
                    self._broadcast(None, "sink", self._sink_view())


def topic_view(job: str, topic: Topic) -> dict[str, Any]:
    out: dict[str, Any] = {"job": job, "key": topic.key}
    out.update(text_or_base64("payload", topic.payload))
    out.update(status=topic.status, attempts=topic.attempts)
    out.update(text_or_base64("result", topic.result))
    out.update(error=topic.error, worker=topic.worker, created_at=topic.created_at,
               updated_at=topic.updated_at)
    return out


def text_or_base64(name: str, value: bytes | None) -> dict[str, Any]:
    if value is None:
        return {name: None}
    try:
        return {name: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {name + "_base64": base64.b64encode(value).decode("ascii")}


def payload_text(value: Any) -> bytes:
    """A JSON payload as stored: a string as is, anything else as its JSON text."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
