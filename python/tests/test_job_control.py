"""Job control end to end against the real sink, broker and workers (docs/api.md, SPEC §9):
pause across a sink restart, cancel while a handler runs, cancel racing with completion, late
results, delete while work runs, retry-failed. Every test ends with the database's own
account: its rows read with sqlite3, and the counts three ways (dbcheck.assert_counts_match).
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.request
from pathlib import Path

import pytest

import dbcheck
from dbcheck import assert_counts_match
from harness import HERE, Server, kind, wait_until
from rawhttp import q, send
from topicflow import TopicflowError

pytestmark = pytest.mark.skipif(kind() != "real", reason="reads the real sink's database")

EXEC_PIDS = f"exec:sh {HERE / 'exec_pids.sh'}"


def metric(server: Server, name: str) -> float:
    """One unlabelled value of the sink's /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"no metric {name} in /metrics"
    return float(match.group(1))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed and waiting to be reaped, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_of(server: Server, key: str) -> list[int] | None:
    """The shell and child pids exec_pids.sh recorded for ``key``, once it has."""
    name = hashlib.sha256(key.encode()).hexdigest()
    path = server.dir / "state" / f"pids-{name}"
    return [int(p) for p in path.read_text().split()] if path.exists() else None


# --- pause ------------------------------------------------------------------------------------

def test_pause_survives_a_sink_restart(make_server, job_name):
    s = make_server(workers=1, slots=4)
    tf = s.client()
    tf.submit(job_name, ["first"])
    tf.wait(job_name, timeout=30)
    paused = tf.pause(job_name)
    assert (paused["paused"], paused["changed"]) == (True, 0), paused
    keys = [f"p{i:02}" for i in range(20)]
    tf.submit(job_name, keys)
    assert dbcheck.topics(s.db, job_name)["p00"]["status"] == "pending"

    s.restart_sink()

    assert tf.job(job_name)["paused"] is True
    assert any(j["job"] == job_name and j["paused"] for j in tf.jobs())
    # The restarted sink dispatches (another job runs to the end) but not the paused job's topics:
    # they are still pending and were never handed out (attempts 0 in the rows).
    other = f"{job_name}-other"
    tf.submit(other, [f"o{i}" for i in range(8)])
    assert tf.wait(other, timeout=30)["completed"] == 8
    rows = dbcheck.topics(s.db, job_name)
    held = {k: (rows[k]["status"], rows[k]["attempts"]) for k in keys}
    assert held == {k: ("pending", 0) for k in keys}
    assert tf.job(job_name)["pending"] == 20
    assert_counts_match(s)

    resumed = tf.resume(job_name)
    assert resumed["paused"] is False
    final = tf.wait(job_name, timeout=30)
    assert (final["completed"], final["pending"], final["running"]) == (21, 0, 0), final
    rows = dbcheck.topics(s.db, job_name)
    # each ran once: nothing was dispatched (and lost, or run) while the job was paused
    assert {k: (r["status"], r["attempts"], r["result"]) for k, r in rows.items() if k in keys} \
        == {k: ("completed", 1, k.upper()) for k in keys}
    assert_counts_match(s)


def test_pause_lets_running_topics_finish_and_holds_the_rest(make_server, job_name):
    s = make_server(workers=1, slots=2)
    tf = s.client()
    tf.submit(job_name, [("slow1", "sleep:1500 a"), ("slow2", "sleep:1500 b")] +
              [(f"q{i}", "quick") for i in range(6)])
    wait_until(lambda: tf.job(job_name)["running"] == 2, what="both slots running")
    tf.pause(job_name)
    assert tf.job(job_name)["paused"] is True
    # the two running topics finish (a pause stops dispatching, not what runs)
    assert tf.topic(job_name, "slow1", wait=30)["status"] == "completed"
    assert tf.topic(job_name, "slow2", wait=30)["status"] == "completed"
    assert dbcheck.topics(s.db, job_name)["slow1"]["result"] == "A"
    tf.resume(job_name)
    assert tf.wait(job_name, timeout=30)["completed"] == 8
    assert_counts_match(s)


# --- cancel -----------------------------------------------------------------------------------

def test_cancel_kills_a_running_exec_handler_within_a_second(make_server, job_name):
    s = make_server(workers=1, slots=2, handler=EXEC_PIDS)
    tf = s.client()
    tf.submit(job_name, [("h1", "hang"), ("h2", "hang")] + [(f"w{i}", "waiting") for i in range(3)])
    pids = {k: wait_until(lambda k=k: pids_of(s, k), what=f"{k}'s handler started")
            for k in ("h1", "h2")}
    wait_until(lambda: tf.job(job_name)["running"] == 2, what="h1 and h2 recorded running")
    assert all(alive(p) for ps in pids.values() for p in ps)
    late_before = metric(s, "topicflow_sink_cancelled_late_results_total")

    started = time.monotonic()
    answer = tf.cancel(job_name)
    assert (answer["changed"], answer["cancelled"], answer["pending"], answer["running"]) == \
        (5, 5, 0, 0), answer
    left = wait_until(lambda: not any(alive(p) for ps in pids.values() for p in ps),
                      timeout=5, interval=0.01, what="handler processes gone")
    gone_after = time.monotonic() - started
    assert left and gone_after < 1.0, f"handler processes gone {gone_after:.3f} s after the cancel"

    # The killed handlers' outcome reaches the sink and is ignored: the rows stay cancelled.
    wait_until(lambda: metric(s, "topicflow_sink_cancelled_late_results_total") >= late_before + 2,
               what="the killed attempts' results counted as late")
    rows = dbcheck.topics(s.db, job_name)
    assert {k: r["status"] for k, r in rows.items()} == dict.fromkeys(rows, "cancelled")
    assert rows["h1"]["result"] is None and rows["h2"]["result"] is None
    # w0 never ran: it was pending, or on its way to the worker (in transit: its attempt number is
    # then recorded, so no later attempt reuses it) and dropped there
    assert rows["w0"]["attempts"] <= 1, rows["w0"]
    # the worker's slots are free again: new work of the job runs (cancel is not a tombstone)
    tf.submit(job_name, [("after", "after")])
    assert tf.topic(job_name, "after", wait=30)["result"] == "AFTER"
    assert_counts_match(s)


def test_a_late_result_of_a_cancelled_topic_is_ignored(make_server, job_name, tmp_path):
    # The worker never hears the sink's cancel events: its handler runs to the end and reports
    # a completed result for a topic that was cancelled meanwhile.
    deaf = {"events": f"ipc://{tmp_path}/nobody-publishes-here.ipc"}
    s = make_server(workers=1, slots=2, worker_endpoints=deaf)
    tf = s.client()
    tf.submit(job_name, [("late", "sleep:1000 late result")])
    wait_until(lambda: dbcheck.statuses(s.db, job_name).get("late") == "running",
               what="the topic running")
    late_before = metric(s, "topicflow_sink_cancelled_late_results_total")
    assert tf.cancel(job_name)["changed"] == 1
    wait_until(lambda: metric(s, "topicflow_sink_cancelled_late_results_total") > late_before,
               what="the late result arriving")
    row = dbcheck.topics(s.db, job_name)["late"]
    assert (row["status"], row["result"]) == ("cancelled", None), row
    assert tf.topic(job_name, "late")["status"] == "cancelled"
    assert_counts_match(s)


def test_a_late_result_does_not_complete_a_resubmitted_topic(make_server, job_name, tmp_path):
    deaf = {"events": f"ipc://{tmp_path}/nobody-publishes-here.ipc"}
    s = make_server(workers=1, slots=2, worker_endpoints=deaf)
    tf = s.client()
    tf.submit(job_name, [("k", "sleep:1000 old run")])
    wait_until(lambda: dbcheck.statuses(s.db, job_name).get("k") == "running",
               what="the first run running")
    tf.pause(job_name)  # (so the new submission waits: the late result arrives first)
    assert tf.cancel(job_name)["changed"] == 1
    again = send(s.url, f"/v1/jobs/{q(job_name)}/topics", "POST",
                 [{"key": "k", "payload": "new run"}])
    assert again.status == 200 and again.doc["requeued"] == 1, again
    late_before = metric(s, "topicflow_sink_cancelled_late_results_total")
    stale_before = metric(s, "topicflow_sink_stale_updates_total")
    # the old run ends about a second after it started; its result must not count (ignored as
    # late, or as stale: its attempt belongs to before the topic was submitted again)
    wait_until(lambda: metric(s, "topicflow_sink_cancelled_late_results_total") > late_before
               or metric(s, "topicflow_sink_stale_updates_total") > stale_before
               or dbcheck.statuses(s.db, job_name)["k"] != "pending",
               what="the old run's result arriving")
    row = dbcheck.topics(s.db, job_name)["k"]
    assert (row["status"], row["result"]) == ("pending", None), row
    tf.resume(job_name)
    assert tf.topic(job_name, "k", wait=30)["result"] == "NEW RUN"
    assert_counts_match(s)


def test_cancel_racing_with_completion_ends_each_topic_once(server, job_name):
    tf = server.client()
    n = 400
    keys = [f"r{i:03}" for i in range(n)]
    # (and a few that fail retryably: pending with a due time in the future when cancelled)
    tf.submit(job_name, [(k, "retry" if k.endswith("7") else "sleep:20 ok") for k in keys])
    wait_until(lambda: tf.job(job_name)["completed"] >= 60, what="some topics completed")
    answer = tf.cancel(job_name)
    # right after the cancel's commit nothing of the job is left to run
    assert (answer["pending"], answer["running"]) == (0, 0), answer
    assert answer["completed"] + answer["cancelled"] + answer["failed"] == n, answer
    assert answer["changed"] == answer["cancelled"] > 0, answer
    final = wait_until(lambda: (j := tf.job(job_name))["running"] == 0 and j, what="settled")
    rows = dbcheck.topics(server.db, job_name)
    assert sorted(rows) == keys
    by_status: dict[str, list[str]] = {}
    for key, row in rows.items():
        by_status.setdefault(row["status"], []).append(key)
    assert set(by_status) <= {"completed", "cancelled", "failed"}, \
        {s: len(v) for s, v in by_status.items()}
    # (failed: only the retrying ones, out of attempts before the cancel came)
    assert all(k.endswith("7") for k in by_status.get("failed", []))
    # a cancelled row never took a result, a completed one always did; no row changed after
    # the cancel (the job's counts are those the cancel answered)
    assert all(rows[k]["result"] is None for k in by_status.get("cancelled", []))
    assert all(rows[k]["result"] == "OK" for k in by_status.get("completed", []))
    retried = [k for k in keys if k.endswith("7")]
    assert all(rows[k]["status"] in ("cancelled", "failed") for k in retried), \
        {k: rows[k]["status"] for k in retried}
    assert tuple(final[s] for s in dbcheck.TERMINAL) == \
        tuple(len(by_status.get(s, [])) for s in dbcheck.TERMINAL)
    assert tuple(final[s] for s in dbcheck.TERMINAL) == \
        tuple(answer[s] for s in dbcheck.TERMINAL)
    assert_counts_match(server)


def test_cancel_of_a_finished_job_changes_nothing(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["a", ("b", "fail")])
    tf.wait(job_name, timeout=30)
    answer = tf.cancel(job_name)
    assert (answer["changed"], answer["completed"], answer["failed"], answer["cancelled"]) == \
        (0, 1, 1, 0), answer
    assert dbcheck.statuses(server.db, job_name) == {"a": "completed", "b": "failed"}
    assert_counts_match(server)


# --- delete -----------------------------------------------------------------------------------

def test_delete_is_refused_while_work_runs_and_allowed_after(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("h1", "hang"), ("h2", "hang"), ("done", "quick")])
    wait_until(lambda: tf.job(job_name)["running"] >= 1, what="a hanging topic running")
    with pytest.raises(TopicflowError) as e:
        tf.delete(job_name)
    assert e.value.status == 409 and "cancel" in e.value.error, e.value
    assert dbcheck.row_count(server.db, job_name) == 3
    assert tf.job(job_name)["total"] == 3
    assert_counts_match(server)

    tf.cancel(job_name)
    assert tf.delete(job_name) == {"job": job_name, "deleted": 3}
    assert dbcheck.row_count(server.db, job_name) == 0
    with dbcheck.snapshot(server.db) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE name = ?",
                            (job_name,)).fetchone()[0] == 0
    for call in (lambda: tf.job(job_name), lambda: tf.page(job_name),
                 lambda: tf.topic(job_name, "h1"), lambda: tf.delete(job_name)):
        with pytest.raises(TopicflowError) as e:
            call()
        assert e.value.status == 404, e.value
    assert all(j["job"] != job_name for j in tf.jobs())
    assert_counts_match(server)


def test_delete_is_refused_while_a_paused_job_has_pending_topics(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["one"])
    tf.wait(job_name, timeout=30)
    tf.pause(job_name)
    tf.submit(job_name, ["two"])
    with pytest.raises(TopicflowError) as e:
        tf.delete(job_name)
    assert e.value.status == 409
    assert dbcheck.statuses(server.db, job_name) == {"one": "completed", "two": "pending"}
    tf.resume(job_name)
    tf.wait(job_name, timeout=30)
    assert tf.delete(job_name)["deleted"] == 2
    assert dbcheck.row_count(server.db, job_name) == 0
    # the name is free again: a new job of that name starts from nothing, not paused
    tf.submit(job_name, ["three"])
    final = tf.wait(job_name, timeout=30)
    assert (final["total"], final["completed"], final["paused"]) == (1, 1, False), final
    assert_counts_match(server)


# --- retry-failed -----------------------------------------------------------------------------

def test_retry_failed_requeues_only_failed_topics(server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"f{i}", "flaky") for i in range(3)] + [("ok", "fine")])
    assert tf.wait(job_name, timeout=30)["failed"] == 3
    before = dbcheck.topics(server.db, job_name)
    assert before["f0"]["error"].startswith("flaky") or "flaky" in before["f0"]["error"]
    answer = tf.retry_failed(job_name)
    assert answer["changed"] == 3, answer
    final = tf.wait(job_name, timeout=30)
    assert (final["completed"], final["failed"]) == (4, 0), final
    rows = dbcheck.topics(server.db, job_name)
    assert {k: (r["status"], r["attempts"]) for k, r in rows.items()} == \
        {**{f"f{i}": ("completed", 2) for i in range(3)}, "ok": ("completed", 1)}
    # (attempt numbers go on: 2 is the first of the fresh set, never mistaken for the failed 1)
    assert rows["ok"]["result"] == before["ok"]["result"] == "FINE"  # not run again
    assert tf.retry_failed(job_name)["changed"] == 0
    assert_counts_match(server)


def test_new_topics_after_a_cancel_run_as_usual(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("a", "hang"), ("b", "hang")])
    wait_until(lambda: tf.job(job_name)["running"] >= 1, what="running")
    assert tf.cancel(job_name)["changed"] == 2
    tf.submit(job_name, [("c", "new"), ("d", "new")])
    final = tf.wait(job_name, timeout=30)
    assert (final["completed"], final["cancelled"]) == (2, 2), final
    rows = dbcheck.topics(server.db, job_name)
    assert {k: (r["status"], r["result"]) for k, r in rows.items()} == \
        {"a": ("cancelled", None), "b": ("cancelled", None), "c": ("completed", "NEW"),
         "d": ("completed", "NEW")}
    assert_counts_match(server)


def test_cancelled_topics_submitted_again_run_as_new_work(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("a", "hang"), ("b", "hang")])
    wait_until(lambda: tf.job(job_name)["running"] == 2, what="both running")
    late_before = metric(server, "topicflow_sink_cancelled_late_results_total")
    assert tf.cancel(job_name)["changed"] == 2
    # (the stopped runs' outcomes have come back and were ignored: nothing of them is left)
    wait_until(lambda: metric(server, "topicflow_sink_cancelled_late_results_total")
               >= late_before + 2, what="both stopped runs reported")
    again = send(server.url, f"/v1/jobs/{q(job_name)}/topics", "POST",
                 [{"key": "a", "payload": "again"}, {"key": "b", "payload": "again"}])
    assert again.status == 200 and again.doc["requeued"] == 2, again
    final = tf.wait(job_name, timeout=30)
    rows = dbcheck.topics(server.db, job_name)
    assert {k: (r["status"], r["result"]) for k, r in rows.items()} == \
        {"a": ("completed", "AGAIN"), "b": ("completed", "AGAIN")}, rows
    assert (final["completed"], final["cancelled"]) == (2, 0), final
    assert_counts_match(server)


# --- pause with the other actions -------------------------------------------------------------

def test_retry_failed_of_a_paused_job_waits_for_resume(make_server, job_name):
    s = make_server(workers=1, slots=4)
    tf = s.client()
    tf.submit(job_name, [(f"f{i}", "flaky") for i in range(3)])
    assert tf.wait(job_name, timeout=30)["failed"] == 3
    tf.pause(job_name)
    assert tf.retry_failed(job_name)["changed"] == 3
    # proof that dispatch goes on for others, while the paused job's requeued topics wait
    other = f"{job_name}-other"
    tf.submit(other, [f"o{i}" for i in range(8)])
    assert tf.wait(other, timeout=30)["completed"] == 8
    rows = dbcheck.topics(s.db, job_name)
    assert {k: (r["status"], r["attempts"]) for k, r in rows.items()} == \
        {f"f{i}": ("pending", 1) for i in range(3)}  # (not dispatched: still attempt 1's number)
    tf.resume(job_name)
    assert tf.wait(job_name, timeout=30)["completed"] == 3
    assert_counts_match(s)


def test_a_deleted_paused_job_leaves_no_pause_behind(make_server, job_name):
    s = make_server(workers=1, slots=4)
    tf = s.client()
    tf.submit(job_name, ["a"])
    tf.wait(job_name, timeout=30)
    tf.pause(job_name)
    assert tf.delete(job_name)["deleted"] == 1  # all terminal: a paused job may go
    tf.submit(job_name, ["b"])
    assert tf.job(job_name)["paused"] is False
    other = f"{job_name}-other"  # submitted after b, so dispatched after it
    tf.submit(other, [f"o{i}" for i in range(8)])
    assert tf.wait(other, timeout=30)["completed"] == 8
    assert tf.topic(job_name, "b", wait=3)["status"] == "completed"
    assert_counts_match(s)


def test_a_cancelled_paused_job_stays_cancelled_across_a_restart(make_server, job_name):
    s = make_server(workers=1, slots=4)
    tf = s.client()
    tf.submit(job_name, ["first"])
    tf.wait(job_name, timeout=30)
    tf.pause(job_name)
    tf.submit(job_name, [f"p{i}" for i in range(5)])
    assert tf.cancel(job_name)["changed"] == 5
    s.restart_sink()
    job = tf.job(job_name)
    assert (job["cancelled"], job["completed"], job["pending"], job["paused"]) == \
        (5, 1, 0, True), job
    tf.resume(job_name)
    assert tf.wait(job_name, timeout=30)["cancelled"] == 5
    assert set(dbcheck.statuses(s.db, job_name).values()) == {"completed", "cancelled"}
    assert_counts_match(s)
