"""topicflow.Client against the server under test (harness.py: real sink or fake)."""

from __future__ import annotations

import json

import pytest

from harness import wait_until
from topicflow import Client, TopicflowError, WaitTimeout


def test_submit_counts_every_form_of_topic(server, job_name):
    tf = server.client()
    answer = tf.submit(job_name, ["plain", ("pair", "payload"), ("json", {"n": 2}),
                                  ("binary", b"\xff\x00"), {"key": "dict", "payload": "x"},
                                  "plain"])
    assert answer == {"accepted": 5, "duplicates": 1, "skipped_completed": 0,
                      "skipped_failed": 0, "already_queued": 0, "requeued": 0, "rejected": []}
    tf.wait(job_name, timeout=30)
    assert tf.topic(job_name, "plain")["payload"] == "plain"
    assert tf.topic(job_name, "pair")["result"] == "PAYLOAD"
    assert json.loads(tf.topic(job_name, "json")["payload"]) == {"n": 2}  # its JSON text
    binary = tf.topic(job_name, "binary")
    assert binary["payload_base64"] == "/wA=" and "payload" not in binary


def test_submit_in_chunks_sums_the_answers(server, job_name):
    tf = server.client()
    keys = [f"k{i:03}" for i in range(25)]
    first = tf.submit(job_name, iter(keys), chunk_size=10)
    assert first["accepted"] == 25
    tf.wait(job_name, timeout=30)
    again = tf.submit(job_name, keys + ["new"], chunk_size=7)
    assert again["skipped_completed"] == 25 and again["accepted"] == 1
    assert tf.job(job_name)["total"] == 26


def test_a_bad_topic_is_a_400_with_the_servers_reason_and_registers_nothing(server, job_name):
    tf = server.client()
    with pytest.raises(TopicflowError) as e:
        tf.submit(job_name, [{"key": "good"}, {"key": ""}])
    assert e.value.status == 400
    assert "topics[1]" in e.value.error and "key" in e.value.error
    with pytest.raises(TopicflowError) as e:
        tf.job(job_name)
    assert e.value.status == 404


def test_a_failing_chunk_reports_what_earlier_chunks_registered(server, job_name):
    tf = server.client()
    with pytest.raises(TopicflowError) as e:
        tf.submit(job_name, ["a", "b", {"key": ""}], chunk_size=2)
    assert e.value.status == 400 and e.value.counts["accepted"] == 2
    assert "chunk starting at topic 2" in e.value.error


def test_unknown_job_and_topic_are_404(server, job_name):
    tf = server.client()
    for call in (lambda: tf.job(job_name), lambda: tf.topic(job_name, "nope"),
                 lambda: tf.pause(job_name), lambda: list(tf.topics(job_name))):
        with pytest.raises(TopicflowError) as e:
            call()
        assert e.value.status == 404, e.value


def test_no_server_is_an_error_without_status():
    with pytest.raises(TopicflowError) as e:
        Client("http://127.0.0.1:9", timeout=5).jobs()
    assert e.value.status is None and "no answer" in e.value.error


def test_pages_follow_the_cursor_in_key_order(server, job_name):
    tf = server.client()
    keys = [f"t{i:02}" for i in range(23)]
    tf.submit(job_name, [(k, "fail" if i % 3 == 0 else k) for i, k in enumerate(keys)])
    tf.wait(job_name, timeout=30)
    assert [t["key"] for t in tf.topics(job_name, page_size=5)] == keys
    failed = [t for t in tf.topics(job_name, status="failed", page_size=2)]
    assert [t["key"] for t in failed] == keys[::3]
    assert all("failed on purpose" in t["error"] for t in failed)
    page = tf.page(job_name, limit=10)
    assert len(page["topics"]) == 10 and page["next"] == "t09"
    page = tf.page(job_name, after=page["next"], limit=10)
    assert page["topics"][0]["key"] == "t10"
    last = tf.page(job_name, start="t20", limit=10)
    assert [t["key"] for t in last["topics"]] == ["t20", "t21", "t22"] and last["next"] is None


def test_bad_page_arguments_are_400(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["x"])
    for kw in ({"status": "nope"}, {"limit": 0}, {"limit": 1001}):
        with pytest.raises(TopicflowError) as e:
            tf.page(job_name, **kw)
        assert e.value.status == 400, kw


@pytest.mark.parametrize("job,key", [("night/ly", "a b/ü"), ("100%", "?x=1&y=2#frag"),
                                     ("日本語 job", "..")])
def test_names_are_percent_encoded(server, job, key):
    tf = server.client()
    tf.submit(job, [(key, "hello")])
    got = tf.topic(job, key, wait=20)
    assert (got["job"], got["key"], got["result"]) == (job, key, "HELLO")
    assert [t["key"] for t in tf.topics(job)] == [key]
    assert any(j["job"] == job for j in tf.jobs())
    tf.delete(job)


def test_topic_wait_answers_when_it_is_terminal(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("slow", "sleep:300 done")])
    assert tf.topic(job_name, "slow", wait=30)["status"] == "completed"
    assert tf.topic(job_name, "slow")["result"] == "DONE"


def test_wait_reports_progress_until_nothing_is_left(server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"s{i}", "sleep:50 ok") for i in range(20)] + [("f", "fail")])
    seen: list[dict] = []
    final = tf.wait(job_name, on_progress=seen.append, timeout=60)
    assert (final["completed"], final["failed"], final["pending"], final["running"]) == \
        (20, 1, 0, 0)
    assert seen and seen[-1] == final


def test_wait_times_out_while_a_topic_hangs(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("h", "hang")])
    with pytest.raises(WaitTimeout) as e:
        tf.wait(job_name, timeout=1)
    assert isinstance(e.value, TimeoutError) and e.value.job["total"] == 1
    assert tf.cancel(job_name)["changed"] == 1


def test_wait_polls_when_there_are_no_events(server, job_name):
    class NoEvents(Client):
        def events(self, job=None, timeout=None):
            raise TopicflowError(404, "no such endpoint")

    tf = NoEvents(server.url, token=server.token)
    tf.submit(job_name, [(f"p{i}", "sleep:100") for i in range(4)])
    assert tf.wait(job_name, timeout=30, poll_interval=0.1)["completed"] == 4


def test_wait_on_an_unknown_job_is_404(server, job_name):
    with pytest.raises(TopicflowError) as e:
        server.client().wait(job_name, timeout=5)
    assert e.value.status == 404


def test_events_start_with_the_current_state_then_follow_changes(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["one"])
    tf.wait(job_name, timeout=30)
    stream = tf.events(job_name, timeout=30)
    first = next(stream)
    assert first.type == "job" and first.data["job"] == job_name
    assert first.data["completed"] == 1 and first.data["total"] == 1
    tf.submit(job_name, ["two", "three"])
    totals = wait_until(lambda: next(e for e in stream if e.type == "job")
                        .data["completed"] == 3, what="a job event with 3 completed")
    assert totals
    sink = next(e for e in stream if e.type == "sink")
    assert {"workers", "time_ms", "healthy"} <= set(sink.data)
    stream.close()


def test_pause_keeps_new_topics_pending_until_resume(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["first"])
    tf.wait(job_name, timeout=30)
    assert tf.pause(job_name)["paused"] is True
    tf.submit(job_name, ["second"])
    assert tf.topic(job_name, "second", wait=1)["status"] == "pending"
    assert tf.job(job_name)["paused"] is True
    assert tf.resume(job_name)["paused"] is False
    assert tf.wait(job_name, timeout=30)["completed"] == 2


def test_cancel_then_delete(server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"h{i}", "hang") for i in range(3)])
    wait_until(lambda: tf.job(job_name)["running"] >= 1, what="a hanging topic running")
    with pytest.raises(TopicflowError) as e:
        tf.delete(job_name)
    assert e.value.status == 409
    cancelled = tf.cancel(job_name)
    assert cancelled["changed"] == 3 and cancelled["cancelled"] == 3
    assert {t["status"] for t in tf.topics(job_name)} == {"cancelled"}
    assert tf.delete(job_name) == {"job": job_name, "deleted": 3}
    with pytest.raises(TopicflowError) as e:
        tf.job(job_name)
    assert e.value.status == 404


def test_retry_failed_runs_failed_topics_again(server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"f{i}", "flaky") for i in range(4)] + ["fine"])
    assert tf.wait(job_name, timeout=30)["failed"] == 4
    error = tf.topic(job_name, "f0")["error"]
    assert "flaky: first attempt fails" in error
    assert tf.retry_failed(job_name)["changed"] == 4
    final = tf.wait(job_name, timeout=30)
    assert (final["completed"], final["failed"]) == (5, 0)


def test_writes_need_the_token_and_reads_do_not(make_server, job_name):
    s = make_server(token="s3cret")
    anonymous, wrong = s.client(token=None), s.client(token="wrong")
    for tf in (anonymous, wrong):
        with pytest.raises(TopicflowError) as e:
            tf.submit(job_name, ["x"])
        assert e.value.status == 401
    assert s.client().submit(job_name, ["x"])["accepted"] == 1
    assert anonymous.job(job_name)["total"] == 1


def test_a_read_only_server_refuses_writes(make_server, job_name):
    s = make_server(read_only=True, preload={job_name: [{"key": "k", "payload": "v"}]})
    tf = s.client()
    assert tf.job(job_name)["completed"] == 1
    for call in (lambda: tf.submit(job_name, ["y"]), lambda: tf.cancel(job_name),
                 lambda: tf.delete(job_name)):
        with pytest.raises(TopicflowError) as e:
            call()
        assert e.value.status == 403
