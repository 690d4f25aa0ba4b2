"""What the real sink's database says, read the way a test may (the client library may not):
the SQLite file opened read-only with Python's sqlite3, each check in one read transaction.

``assert_counts_match(server)`` is the check every e2e scenario ends with: the per-job counts
of the ``jobs`` table equal ``SELECT job, status, count(*) FROM topics GROUP BY job, status``
(in the same snapshot: the sink changes both in one transaction), and ``GET /v1/jobs`` says
the same.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import Server

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL = ("completed", "failed", "cancelled")


@contextlib.contextmanager
def snapshot(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction: every query sees the same commit."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def topics(db: Path, job: str) -> dict[str, dict[str, Any]]:
    """The job's rows by key: status, attempts, result (text when it is UTF-8), error, worker."""
    with snapshot(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT key, status, attempts, result, error, worker FROM topics "
                            "WHERE job = ? ORDER BY key", (job,)).fetchall()
    return {r["key"]: {**dict(r), "result": _text(r["result"])} for r in rows}


def _text(value: Any) -> Any:
    """A BLOB column as text when it is UTF-8 (results are stored as blobs)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def statuses(db: Path, job: str) -> dict[str, str]:
    """The job's statuses by key."""
    return {key: row["status"] for key, row in topics(db, job).items()}


def row_count(db: Path, job: str | None = None) -> int:
    """Rows of ``topics`` (of one job, or all)."""
    with snapshot(db) as conn:
        if job is None:
            return conn.execute("SELECT count(*) FROM topics").fetchone()[0]
        return conn.execute("SELECT count(*) FROM topics WHERE job = ?", (job,)).fetchone()[0]


def _counts(db: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """(the jobs table, the GROUP BY of topics), from one snapshot."""
    with snapshot(db) as conn:
        table = {name: {**dict(zip(STATUSES, counts)), "paused": bool(paused)}
                 for name, *counts, paused in conn.execute(
                     "SELECT name, pending, running, completed, failed, cancelled, paused "
                     "FROM jobs")}
        grouped: dict[str, dict[str, int]] = {}
        for job, status, n in conn.execute(
                "SELECT job, status, count(*) FROM topics GROUP BY job, status"):
            grouped.setdefault(job, dict.fromkeys(STATUSES, 0))[status] = n
    return table, grouped


def assert_counts_match(server: Server, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    """Asserts the three views of the counts agree; returns the API's jobs by name.

    - the jobs table equals the GROUP BY in one snapshot (no job without topics in the table);
    - GET /v1/jobs equals them (retried until ``timeout``: the API reads another snapshot, so
      only a stable state can be compared; a difference that lasts is a failure), with
      ``total`` the sum and the list ordered by name.
    """
    deadline = time.monotonic() + timeout
    while True:
        table, grouped = _counts(server.db)
        counts_only = {name: {s: row[s] for s in STATUSES} for name, row in table.items()}
        assert counts_only == grouped, "jobs table != GROUP BY in the same snapshot:\n" + \
            _diff(counts_only, grouped)
        api_jobs = server.client().jobs()
        names = [j["job"] for j in api_jobs]
        assert names == sorted(names, key=lambda n: n.encode()), f"not ordered by name: {names}"
        api = {j["job"]: j for j in api_jobs}
        for name, j in api.items():
            assert j["total"] == sum(j[s] for s in STATUSES), j
        api_view = {n: {**{s: j[s] for s in STATUSES}, "paused": j["paused"]}
                    for n, j in api.items()}
        if api_view == table:
            return api
        if time.monotonic() > deadline:
            pytest.fail(f"GET /v1/jobs != the jobs table after {timeout} s:\n"
                        + _diff(api_view, table))
        time.sleep(0.05)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append(f"  {name!r}: {a.get(name)} != {b.get(name)}")
    return "\n".join(lines)
