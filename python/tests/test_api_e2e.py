"""Every endpoint of docs/api.md end to end against the real sink, broker and workers, with raw
HTTP (rawhttp.py) for what a client library would never send, and the database read back with
sqlite3 (dbcheck.py): bad bodies register nothing, odd names round-trip, resubmission is
idempotent, pages walk a changing job exactly once, events and workers. Each test ends with the
counts checked three ways (dbcheck.assert_counts_match)."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import dbcheck
from dbcheck import assert_counts_match
from harness import kind, wait_until
from rawhttp import check_error_body, one_line, q, raw_exchange, send

pytestmark = pytest.mark.skipif(kind() != "real", reason="reads the real sink's database")


def topics_url(job: str) -> str:
    return f"/v1/jobs/{q(job)}/topics"


# --- reads ------------------------------------------------------------------------------------

def test_every_read_endpoint_answers(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("a", "alpha"), ("b", "fail")])
    tf.wait(job_name, timeout=30)
    jobs = send(server.url, "/v1/jobs")
    assert jobs.status == 200 and jobs.headers["Content-Type"].startswith("application/json")
    mine = next(j for j in jobs.doc["jobs"] if j["job"] == job_name)
    assert mine == {"job": job_name, "pending": 0, "running": 0, "completed": 1, "failed": 1,
                    "cancelled": 0, "total": 2, "paused": False}
    assert send(server.url, f"/v1/jobs/{q(job_name)}").doc == mine
    page = send(server.url, topics_url(job_name)).doc
    assert [(t["key"], t["status"], t["attempts"]) for t in page["topics"]] == \
        [("a", "completed", 1), ("b", "failed", 1)] and page["next"] is None
    assert set(page["topics"][0]) == {"key", "status", "attempts", "updated_at", "error"}
    assert page["topics"][0]["error"] is None and "failed on purpose" in page["topics"][1]["error"]
    a = send(server.url, f"{topics_url(job_name)}/a").doc
    assert set(a) == {"job", "key", "payload", "status", "attempts", "result", "error", "worker",
                      "created_at", "updated_at"}
    assert (a["job"], a["key"], a["payload"], a["result"], a["error"]) == \
        (job_name, "a", "alpha", "ALPHA", None)
    assert a["worker"] in {"worker-1", "worker-2"}
    assert 0 < a["created_at"] <= a["updated_at"] <= time.time() * 1000 + 1000
    b = send(server.url, f"{topics_url(job_name)}/b?wait=5").doc
    assert (b["status"], b["result"]) == ("failed", None) and "failed on purpose" in b["error"]
    assert send(server.url, "/healthz").status == 200
    metrics = send(server.url, "/metrics")
    assert metrics.status == 200 and b"topicflow_sink_updates_committed_total" in metrics.doc
    assert send(server.url, "/").status == 200  # the dashboard
    assert_counts_match(server)


def test_workers_lists_each_worker_with_its_slots(server):
    workers = wait_until(lambda: (w := server.client().workers()) and len(w) == 2 and w,
                         what="both workers heard from")
    assert sorted(w["id"] for w in workers) == ["worker-1", "worker-2"]
    for w in workers:
        assert set(w) == {"id", "slots", "running", "last_heard_ms"}, w
        assert w["slots"] == 4 and 0 <= w["running"] <= 4 and 0 <= w["last_heard_ms"] < 60000, w


def test_topic_wait_returns_at_the_deadline_with_the_current_state(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("h", "hang")])
    wait_until(lambda: tf.job(job_name)["running"] == 1, what="running")
    started = time.monotonic()
    answer = send(server.url, f"{topics_url(job_name)}/h?wait=1")
    took = time.monotonic() - started
    assert answer.status == 200 and answer.doc["status"] == "running" and 0.9 <= took < 5, took
    tf.cancel(job_name)
    assert send(server.url, f"{topics_url(job_name)}/h?wait=30").doc["status"] == "cancelled"
    assert_counts_match(server)


# --- submissions: what registers nothing ------------------------------------------------------

BAD_BODIES = [
    ("not JSON", b"not json", None),
    ("truncated", b'[{"key": "a", "payload": "x"}, {"key": "b"', None),
    ("empty", b"", None),
    ("an object", b'{"key": "k"}', None),
    ("a string", b'"k"', None),
    ("not an object", b'[{"key": "a"}, 5]', "topics[1]"),
    ("key a number", b'[{"key": "a"}, {"key": 5}]', "topics[1]"),
    ("key null", b'[{"key": null}]', "topics[0]"),
    ("key an array", b'[{"key": ["a"]}]', "topics[0]"),
    ("key missing", b'[{"key": "a"}, {"payload": "x"}]', "topics[1]"),
    ("key empty", b'[{"key": "a"}, {"key": "b"}, {"key": ""}]', "topics[2]"),
    ("key too long", json.dumps([{"key": "k" * 4097}]).encode(), "topics[0]"),
    ("payload too big", json.dumps([{"key": "k", "payload": "p" * (1 << 20 | 1)}]).encode(),
     "topics[0]"),
    ("not base64", b'[{"key": "a", "payload_base64": "*not base64*"}]', "topics[0]"),
    ("base64 a number", b'[{"key": "a", "payload_base64": 12}]', "topics[0]"),
    ("both payloads", b'[{"key": "a", "payload": "x", "payload_base64": "eA=="}]', "topics[0]"),
    ("unknown field", b'[{"key": "a"}, {"key": "b", "priority": 1}]', "topics[1]"),
    ("deep nesting", b"[" * 100 + b"]" * 100, None),
    ("deep payload", b'[{"key": "a", "payload": ' + b"[" * 100 + b"]" * 100 + b"}]", None),
    ("invalid UTF-8", b'[{"key": "a\xff"}]', None),
    ("lone surrogate", b'[{"key": "a\\ud800"}]', None),
    ("trailing garbage", b'[{"key": "a"}] x', None),
]


@pytest.mark.parametrize("body,where", [(b, w) for _, b, w in BAD_BODIES],
                         ids=[name for name, _, _ in BAD_BODIES])
def test_a_bad_body_is_400_and_registers_nothing(server, job_name, body, where):
    tf = server.client()
    tf.submit(job_name, [("existing", "x")])  # a job that exists: nothing may be added to it
    tf.wait(job_name, timeout=30)
    rows_before = dbcheck.row_count(server.db)
    answer = send(server.url, topics_url(job_name), "POST", body)
    assert answer.status == 400, answer
    assert one_line(answer.error), answer.error
    if where:
        assert answer.error.startswith(where + ":"), answer.error
    assert dbcheck.row_count(server.db) == rows_before
    assert dbcheck.statuses(server.db, job_name) == {"existing": "completed"}
    assert tf.job(job_name)["total"] == 1
    assert_counts_match(server)


def test_a_bad_body_for_a_new_job_creates_no_job(server, job_name):
    answer = send(server.url, topics_url(job_name), "POST", b'[{"key": "ok"}, {"key": ""}]')
    assert answer.status == 400 and answer.error.startswith("topics[1]:"), answer
    assert send(server.url, f"/v1/jobs/{q(job_name)}").status == 404
    assert dbcheck.row_count(server.db, job_name) == 0
    assert_counts_match(server)


def test_an_error_reason_is_one_line_whatever_the_body(server, job_name):
    answer = send(server.url, topics_url(job_name), "POST", b'[{"key": "k", "a\\nb": 1}]')
    assert answer.status == 400
    assert one_line(answer.error), repr(answer.error)


def test_a_body_cut_short_on_the_wire_registers_nothing(server, job_name):
    rows_before = dbcheck.row_count(server.db)
    body = b'[{"key": "a"}, {"key": "b"}]'
    head = (f"POST {topics_url(job_name)} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 50}\r\n"
            "Connection: close\r\n\r\n").encode()
    reply = raw_exchange(server.url, head + body)  # then EOF: 50 bytes never come
    if reply:  # an answer is allowed, but only a refusal
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, reply[:200]
        check_error_body(status, reply.split(b"\r\n\r\n", 1)[1], "cut-short POST")
    assert send(server.url, f"/v1/jobs/{q(job_name)}").status == 404
    assert dbcheck.row_count(server.db) == rows_before
    assert_counts_match(server)


def test_a_form_body_is_refused(server, job_name):
    answer = send(server.url, topics_url(job_name), "POST", b"key=a&payload=b",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 400 and "Content-Type" in answer.error, answer
    assert send(server.url, f"/v1/jobs/{q(job_name)}").status == 404


def test_an_oversized_body_is_413_and_registers_nothing(make_server, job_name):
    s = make_server(workers=0, sink_args=("--http-max-body-bytes", "4096"))
    items = [{"key": f"k{i:04}", "payload": "x" * 40} for i in range(100)]
    body = json.dumps(items).encode()
    assert len(body) > 4096
    answer = send(s.url, topics_url(job_name), "POST", body)
    assert answer.status == 413, answer
    assert send(s.url, f"/v1/jobs/{q(job_name)}").status == 404
    assert dbcheck.row_count(s.db) == 0
    small = send(s.url, topics_url(job_name), "POST", json.dumps(items[:40]).encode())
    assert small.status == 200 and small.doc["accepted"] == 40, small
    assert dbcheck.row_count(s.db, job_name) == 40
    assert_counts_match(s)


def test_more_than_100000_topics_is_413_and_exactly_100000_is_accepted(make_server, job_name):
    s = make_server(workers=0)
    too_many = ("[" + ",".join(f'{{"key":"k{i}"}}' for i in range(100_001)) + "]").encode()
    answer = send(s.url, topics_url(job_name), "POST", too_many, timeout=60)
    assert answer.status == 413 and "100000" in answer.error, answer
    assert dbcheck.row_count(s.db) == 0
    limit = ("[" + ",".join(f'{{"key":"k{i}"}}' for i in range(100_000)) + "]").encode()
    answer = send(s.url, topics_url(job_name), "POST", limit, timeout=60)
    assert answer.status == 200 and answer.doc["accepted"] == 100_000, answer
    assert dbcheck.row_count(s.db, job_name) == 100_000
    assert_counts_match(s)


# --- submissions: what registers --------------------------------------------------------------

def test_resubmission_is_idempotent(server, job_name):
    tf = server.client()
    first = [(f"c{i}", f"c{i}") for i in range(8)] + [("f0", "fail"), ("f1", "fail")]
    assert tf.submit(job_name, first)["accepted"] == 10
    assert tf.wait(job_name, timeout=30)["completed"] == 8
    before = dbcheck.topics(server.db, job_name)
    tf.submit(job_name, [("h", "hang")])
    wait_until(lambda: tf.job(job_name)["running"] == 1, what="the hanging topic running")
    body = [{"key": k, "payload": "changed"} for k, _ in first] + \
        [{"key": "h", "payload": "changed"}, {"key": "new1"}, {"key": "new2"}, {"key": "new1"}]
    answer = send(server.url, topics_url(job_name), "POST", body)
    assert answer.status == 200, answer
    assert {k: answer.doc[k] for k in ("accepted", "duplicates", "skipped_completed",
                                       "skipped_failed", "already_queued", "rejected")} == \
        {"accepted": 2, "duplicates": 1, "skipped_completed": 8, "skipped_failed": 2,
         "already_queued": 1, "rejected": []}
    after = dbcheck.topics(server.db, job_name)
    # completed and failed topics are left exactly as they were: not rerun, payload kept
    assert {k: after[k] for k in before} == before
    assert tf.topic(job_name, "c0")["payload"] == "c0"
    tf.cancel(job_name)
    final = dbcheck.statuses(server.db, job_name)
    assert final["h"] == "cancelled" and len(final) == 13
    assert set(final.values()) <= set(dbcheck.TERMINAL)
    assert_counts_match(server)


ODD_KEYS = ["/", "a/b", "/leading", "trailing/", "a b", "  two  spaces", "100%", "%2F", "%",
            "?x=1&y=2", "#frag", "a?b#c", "+plus+", "a&b=c", ";semi", "back\\slash", "quote\"",
            "ü", "naïve café", "日本語", "😀", "emoji 😀 key", "\u200bzero width", "tab\tkey",
            ".", "..", "...", "a/../b", "~tilde", "NUL\u0000inside"]


def test_odd_keys_round_trip_through_submit_list_and_get(server, job_name):
    job = f"{job_name} /?#%ü😀"
    tf = server.client()
    answer = tf.submit(job, [(k, f"payload of {k}") for k in ODD_KEYS])
    assert answer["accepted"] == len(ODD_KEYS), answer
    tf.wait(job, timeout=30)
    in_order = sorted(ODD_KEYS, key=lambda k: k.encode())
    listed = [t["key"] for t in tf.topics(job, page_size=7)]
    assert listed == in_order
    assert sorted(dbcheck.statuses(server.db, job)) == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        got = tf.topic(job, key)
        assert (got["job"], got["key"], got["payload"], got["status"], got["result"]) == \
            (job, key, f"payload of {key}", "completed", f"payload of {key}".upper()), key
    # the cursors take odd keys too
    for i, key in enumerate(in_order):
        assert [t["key"] for t in tf.page(job, start=key, limit=2)["topics"]] == \
            in_order[i:i + 2], key
        assert [t["key"] for t in tf.page(job, after=key, limit=2)["topics"]] == \
            in_order[i + 1:i + 3], key
    assert any(j["job"] == job for j in tf.jobs())
    assert tf.job(job)["completed"] == len(ODD_KEYS)
    assert tf.delete(job)["deleted"] == len(ODD_KEYS)
    assert_counts_match(server)


@pytest.mark.parametrize("key", ["new\nline", "carriage\rreturn"])
def test_a_key_with_a_line_break_round_trips(server, job_name, key):
    tf = server.client()
    tf.submit(job_name, [(key, "v")])
    assert [t["key"] for t in tf.topics(job_name)] == [key]
    assert tf.topic(job_name, key, wait=30)["key"] == key


def test_bad_job_names_in_the_path_are_400(server):
    for job, why in [("tab\tjob", "control"), ("j" * 257, "257 bytes"), ("%FF", "UTF-8")]:
        path = f"/v1/jobs/{job if job == '%FF' else q(job)}/topics"
        answer = send(server.url, path, "POST", b'[{"key": "k"}]')
        assert answer.status == 400 and why in answer.error, (job[:20], answer)
    assert send(server.url, "/v1/jobs/%zz").status == 400  # bad percent-encoding
    assert_counts_match(server)


def test_binary_payloads_travel_as_base64(server, job_name):
    raw = bytes(range(256))
    answer = send(server.url, topics_url(job_name), "POST",
                  [{"key": "bin", "payload_base64": base64.b64encode(raw).decode()},
                   {"key": "url-safe", "payload_base64": "_-8"},
                   {"key": "json", "payload": {"n": [1, 2.5, None]}}])
    assert answer.status == 200 and answer.doc["accepted"] == 3, answer
    server.client().wait(job_name, timeout=30)
    with dbcheck.snapshot(server.db) as conn:
        stored = dict(conn.execute("SELECT key, payload FROM topics WHERE job = ?", (job_name,)))
    assert stored["bin"] == raw and stored["url-safe"] == b"\xff\xef"
    assert json.loads(stored["json"]) == {"n": [1, 2.5, None]}
    got = send(server.url, f"{topics_url(job_name)}/bin").doc
    assert "payload" not in got and base64.b64decode(got["payload_base64"]) == raw
    assert got["result"] == "256 bytes"
    assert_counts_match(server)


# --- pages ------------------------------------------------------------------------------------

def test_pages_walk_2500_changing_topics_exactly_once_in_order(server, job_name):
    tf = server.client()
    keys = [f"k{i:05}" for i in range(0, 5000, 2)]  # (odd numbers: keys between them later)
    shuffled = keys[1::2] + keys[::2]
    tf.submit(job_name, [(k, "sleep:2 fail" if k.endswith("0") else "sleep:2 ok")
                         for k in shuffled])
    seen: list[str] = []
    behind: list[str] = []
    ahead: list[str] = []
    page = tf.page(job_name, limit=100)
    start = tf.job(job_name)
    while True:
        seen += [t["key"] for t in page["topics"]]
        assert len(page["topics"]) <= 100
        if page["next"] is None:
            break
        assert page["next"] == page["topics"][-1]["key"]
        # rows change under the walk: statuses (topics complete), and new keys on both sides
        now = tf.job(job_name)
        if now["pending"] + now["running"] > 200:
            done = now["completed"] + now["failed"]
            wait_until(lambda d=done: (j := tf.job(job_name))["completed"] + j["failed"] >= d + 20,
                       what="topics finishing during the walk")
        cursor_n = int(page["next"][1:])
        behind.append(f"k{cursor_n - 1:05}")
        ahead.append(f"k{cursor_n + 1:05}")
        tf.submit(job_name, [(behind[-1], "behind the cursor"), (ahead[-1], "ahead of it")])
        page = tf.page(job_name, after=page["next"], limit=100)
    end = tf.job(job_name)
    assert end["completed"] + end["failed"] >= start["completed"] + start["failed"] + 400, \
        "too little changed during the walk"
    assert seen == sorted(set(seen)), "keys repeated or out of order"
    assert set(keys) <= set(seen), f"missing: {sorted(set(keys) - set(seen))[:10]}"
    # keys added behind the cursor are not seen, those added ahead of it are (keyset pages)
    assert set(seen) == set(keys) | set(ahead) and not set(behind) & set(seen)
    tf.wait(job_name, timeout=60)
    final = {t["key"]: t["status"] for t in tf.topics(job_name)}
    assert final == dbcheck.statuses(server.db, job_name)
    for status in ("completed", "failed"):
        walked = [t["key"] for t in tf.topics(job_name, status=status, page_size=97)]
        assert walked == sorted(k for k, st in final.items() if st == status), status
    assert_counts_match(server)


def test_from_jumps_to_a_key(server, job_name):
    tf = server.client()
    keys = [f"k{i:03}" for i in range(0, 300, 3)]
    tf.submit(job_name, keys)
    tf.wait(job_name, timeout=30)
    assert [t["key"] for t in tf.page(job_name, start="k150", limit=3)["topics"]] == \
        ["k150", "k153", "k156"]
    assert [t["key"] for t in tf.page(job_name, start="k151", limit=2)["topics"]] == \
        ["k153", "k156"]  # a key that is not there: the next one
    assert [t["key"] for t in tf.page(job_name, start="", limit=1)["topics"]] == ["k000"]
    last = tf.page(job_name, start="k297", limit=5)
    assert [t["key"] for t in last["topics"]] == ["k297"] and last["next"] is None
    beyond = tf.page(job_name, start="z", limit=5)
    assert beyond == {"topics": [], "next": None}
    assert tf.page(job_name, after="k297") == {"topics": [], "next": None}
    full = tf.page(job_name, limit=100)  # exactly the whole job: no next page
    assert len(full["topics"]) == 100 and full["next"] is None
    assert_counts_match(server)


BAD_QUERIES = ["status=nope", "status=PENDING", "limit=0", "limit=1001", "limit=abc", "limit=-1",
               "limit=", "limit=1.5", "after=a&from=b"]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_page_arguments_are_400(server, job_name, query):
    server.client().submit(job_name, ["x"])
    answer = send(server.url, f"{topics_url(job_name)}?{query}")
    assert answer.status == 400 and one_line(answer.error), answer


@pytest.mark.parametrize("query", ["wait=-1", "wait=61", "wait=x", "wait=1.5", "wait=1e3"])
def test_bad_wait_values_are_400(server, job_name, query):
    server.client().submit(job_name, ["x"])
    answer = send(server.url, f"{topics_url(job_name)}/x?{query}")
    assert answer.status == 400 and "wait" in answer.error, answer


# --- methods, paths, unknown jobs -------------------------------------------------------------

WRONG_METHODS = [("PUT", "/v1/jobs"), ("POST", "/v1/jobs"), ("DELETE", "/v1/jobs"),
                 ("POST", "/v1/jobs/{job}"), ("PUT", "/v1/jobs/{job}"),
                 ("PATCH", "/v1/jobs/{job}"), ("DELETE", "/v1/jobs/{job}/topics"),
                 ("PUT", "/v1/jobs/{job}/topics"), ("POST", "/v1/jobs/{job}/topics/k"),
                 ("DELETE", "/v1/jobs/{job}/topics/k"), ("GET", "/v1/jobs/{job}/pause"),
                 ("GET", "/v1/jobs/{job}/resume"), ("GET", "/v1/jobs/{job}/cancel"),
                 ("DELETE", "/v1/jobs/{job}/cancel"), ("GET", "/v1/jobs/{job}/retry-failed"),
                 ("POST", "/v1/workers"), ("POST", "/v1/events"), ("DELETE", "/v1/events"),
                 ("POST", "/healthz"), ("POST", "/metrics")]


def test_wrong_methods_are_405_and_change_nothing(server, job_name):
    tf = server.client()
    tf.submit(job_name, [("k", "hang")])
    wait_until(lambda: tf.job(job_name)["running"] == 1, what="running")
    for method, path in WRONG_METHODS:
        answer = send(server.url, path.format(job=q(job_name)), method,
                      b"[]" if method in ("POST", "PUT", "PATCH") else None)
        assert answer.status == 405, (method, path, answer)
        assert answer.headers.get("Allow"), (method, path, answer.headers)
    job = tf.job(job_name)
    assert (job["running"], job["paused"], job["cancelled"]) == (1, False, 0), job
    assert dbcheck.statuses(server.db, job_name) == {"k": "running"}
    tf.cancel(job_name)
    assert_counts_match(server)


UNKNOWN_PATHS = ["/v1", "/v1/", "/v1/nope", "/v1/job", "/v1/jobs/{job}/nope",
                 "/v1/jobs/{job}/topics/k/extra", "/v1/jobs/{job}/pause/now", "/v2/jobs",
                 "/v1/workers/w1", "/v1/JOBS", "/api/v1/jobs"]


def test_unknown_paths_are_404(server, job_name):
    server.client().submit(job_name, ["k"])
    for path in UNKNOWN_PATHS:
        answer = send(server.url, path.format(job=q(job_name)))
        assert answer.status == 404, (path, answer)


def test_an_unknown_job_is_404_everywhere_and_is_not_created(server, job_name):
    url = f"/v1/jobs/{q(job_name)}"
    for method, path in [("GET", url), ("GET", f"{url}/topics"), ("GET", f"{url}/topics/k"),
                         ("GET", f"{url}/topics/k?wait=1"), ("POST", f"{url}/pause"),
                         ("POST", f"{url}/resume"), ("POST", f"{url}/cancel"),
                         ("POST", f"{url}/retry-failed"), ("DELETE", url)]:
        answer = send(server.url, path, method)
        assert answer.status == 404 and job_name in answer.error, (method, path, answer)
    with dbcheck.snapshot(server.db) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE name = ?",
                            (job_name,)).fetchone()[0] == 0
    server.client().submit(job_name, ["k"])
    answer = send(server.url, f"{url}/topics/nope")
    assert answer.status == 404 and "nope" in answer.error
    assert_counts_match(server)


# --- events -----------------------------------------------------------------------------------

def test_events_start_with_the_current_state_and_follow_changes_until_delete(server, job_name):
    tf = server.client()
    tf.submit(job_name, ["one", "two"])
    tf.wait(job_name, timeout=30)
    started = time.monotonic()
    stream = tf.events(job_name, timeout=30)
    first = next(stream)
    assert time.monotonic() - started < 2, "the current state must come at once"
    assert first.type == "job"
    assert {k: first.data[k] for k in ("job", "completed", "total", "paused")} == \
        {"job": job_name, "completed": 2, "total": 2, "paused": False}
    assert set(first.data) == {"job", "pending", "running", "completed", "failed", "cancelled",
                               "total", "paused", "time_ms"}
    second = next(stream)
    assert second.type == "sink", second  # then one sink event
    assert second.data["workers"] == 2 and second.data["slots"] == 8 and second.data["healthy"]
    tf.pause(job_name)
    paused = next(e for e in stream if e.type == "job")
    assert paused.data["paused"] is True and paused.data["job"] == job_name
    tf.resume(job_name)
    tf.submit(job_name, ["three"])
    wait_until(lambda: (e := next(e for e in stream if e.type == "job")).data["completed"] == 3
               and not e.data["paused"], what="a job event with the third topic completed")
    tf.delete(job_name)
    deleted = next(e for e in stream if e.type == "deleted")
    assert deleted.data == {"job": job_name}
    stream.close()
    assert_counts_match(server)


def test_events_of_all_jobs_start_with_every_job(server, job_name):
    tf = server.client()
    for suffix in ("a", "b"):
        tf.submit(f"{job_name}-{suffix}", ["x"])
        tf.wait(f"{job_name}-{suffix}", timeout=30)
    api_jobs = [j["job"] for j in tf.jobs()]
    stream = tf.events(timeout=30)
    first: list[str] = []
    for event in stream:
        if event.type != "job":
            assert event.type == "sink"
            break
        first.append(event.data["job"])
    stream.close()
    assert first == api_jobs, "one job event per job, then the sink event"
    assert_counts_match(server)


def test_concurrent_submissions_register_each_key_once(server, job_name):
    keys = [f"c{i:04}" for i in range(1200)]
    # six clients, each with an overlapping half of the keys, in its own order
    bodies = [[{"key": k, "payload": "ok"} for k in (keys[i * 200:] + keys[:i * 200])[:600]]
              for i in range(6)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(
            lambda b: send(server.url, topics_url(job_name), "POST", b, timeout=60), bodies))
    assert all(a.status == 200 for a in answers), answers
    docs = [a.doc for a in answers]
    distinct = set().union(*({item["key"] for item in b} for b in bodies))
    assert sum(d["accepted"] for d in docs) == len(distinct)
    # every other occurrence found the key registered by another request: queued or done
    others = sum(d["already_queued"] + d["skipped_completed"] + d["duplicates"] for d in docs)
    assert others == sum(len(b) for b in bodies) - len(distinct), docs
    assert dbcheck.row_count(server.db, job_name) == len(distinct)
    assert server.client().wait(job_name, timeout=60)["completed"] == len(distinct)
    assert_counts_match(server)
