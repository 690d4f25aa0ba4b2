"""Who may change what (docs/api.md "Security"), end to end against the real sink: the bearer
token, the read-only server, cross-site browser requests, and the refusal to serve a
non-loopback address without either. A refused write changes nothing in the database: each
test compares the rows and the counts before and after (dbcheck.py)."""

from __future__ import annotations

import subprocess

import pytest

import dbcheck
from dbcheck import assert_counts_match
from harness import Server, bin_dir, free_port, kind, wait_until
from rawhttp import send

pytestmark = pytest.mark.skipif(kind() != "real", reason="reads the real sink's database")


def writes(job: str) -> list[tuple[str, str, bytes | None]]:
    """Every write of the API on ``job`` (method, path, body)."""
    url = f"/v1/jobs/{job}"
    return [("POST", f"{url}/topics", b'[{"key": "intruder"}]'), ("POST", f"{url}/pause", None),
            ("POST", f"{url}/resume", None), ("POST", f"{url}/cancel", None),
            ("POST", f"{url}/retry-failed", None), ("DELETE", url, None)]


def everything(server: Server, job: str) -> tuple:
    """What a refused write must leave as it was: the job's rows and its JOB."""
    return dbcheck.topics(server.db, job), server.client().job(job)


def setup_job(server: Server, job: str) -> None:
    """A job with one completed, one failed and one running topic (something every write
    would change)."""
    tf = server.client()
    tf.submit(job, [("done", "x"), ("bad", "fail")])
    tf.wait(job, timeout=30)
    tf.submit(job, [("h", "hang")])
    wait_until(lambda: tf.job(job)["running"] == 1, what="the hanging topic running")


def test_writes_without_the_token_are_401_and_change_nothing(make_server, job_name):
    s = make_server(token="s3cret-token", workers=1)
    setup_job(s, job_name)
    before = everything(s, job_name)
    for auth in (None, "Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-token2",
                 "s3cret-token", "Basic czNjcmV0LXRva2Vu", "Bearer  s3cret-token"):
        headers = {"Authorization": auth} if auth else {}
        for method, path, body in writes(job_name):
            answer = send(s.url, path, method, body, headers)
            assert answer.status == 401, (auth, method, path, answer)
            assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert everything(s, job_name) == before
    # reads are open
    anonymous = s.client(token=None)
    assert anonymous.job(job_name)["total"] == 3
    assert [t["key"] for t in anonymous.topics(job_name)] == ["bad", "done", "h"]
    assert anonymous.topic(job_name, "done")["result"] == "X"
    assert len(anonymous.workers()) == 1
    assert next(anonymous.events(job_name, timeout=10)).data["job"] == job_name
    # the token itself works for every write
    good = {"Authorization": "Bearer s3cret-token"}
    for method, path, body in writes(job_name):
        if method == "DELETE":  # (retry-failed ran "bad" again: delete once it is done)
            s.client().wait(job_name, timeout=30)
        answer = send(s.url, path, method, body, good)
        assert answer.status == 200, (method, path, answer)
    assert dbcheck.row_count(s.db, job_name) == 0  # (the last write was the delete)
    assert_counts_match(s)


def test_a_read_only_server_refuses_every_write(make_server, job_name):
    preload = {job_name: [{"key": "k", "payload": "v"}, {"key": "f", "payload": "fail"}]}
    s = make_server(read_only=True, workers=1, preload=preload)
    before = everything(s, job_name)
    for method, path, body in writes(job_name):
        answer = send(s.url, path, method, body)
        assert answer.status == 403 and "read-only" in answer.error, (method, path, answer)
    assert everything(s, job_name) == before
    assert s.client().topic(job_name, "k")["result"] == "V"
    assert_counts_match(s)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
], ids=["evil-origin", "null-origin", "lookalike-origin", "sec-fetch-site", "both"])
def test_a_cross_site_write_is_403_and_changes_nothing(server, job_name, headers):
    setup_job(server, job_name)
    before = everything(server, job_name)
    for method, path, body in writes(job_name):
        answer = send(server.url, path, method, body, headers)
        assert answer.status == 403 and "cross-site" in answer.error, (method, path, answer)
    assert everything(server, job_name) == before
    server.client().cancel(job_name)
    assert_counts_match(server)


def test_a_cross_site_write_is_refused_even_with_the_token(make_server, job_name):
    s = make_server(token="t0ken", workers=0)
    answer = send(s.url, f"/v1/jobs/{job_name}/topics", "POST", b'[{"key": "k"}]',
                  {"Authorization": "Bearer t0ken", "Origin": "http://evil.example"})
    assert answer.status == 403, answer
    assert dbcheck.row_count(s.db) == 0
    same_site = send(s.url, f"/v1/jobs/{job_name}/topics", "POST", b'[{"key": "k"}]',
                     {"Authorization": "Bearer t0ken", "Sec-Fetch-Site": "same-origin",
                      "Origin": s.url})
    assert same_site.status == 200, same_site
    assert_counts_match(s)


def run_sink(tmp_path, *flags: str) -> subprocess.CompletedProcess | subprocess.Popen:
    bins = bin_dir()
    assert bins is not None
    ep = [arg for name in ("sink", "events")
          for arg in (f"--{name}", f"ipc://{tmp_path}/{name}.ipc")]
    cmd = [str(bins / "topicflow-sink"), "--db", str(tmp_path / "topics.db"), *ep, *flags]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.1"])
def test_a_non_loopback_address_without_token_or_read_only_exits_2(tmp_path, address):
    proc = run_sink(tmp_path, "--http-port", str(free_port()), "--http-address", address)
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, (proc.returncode, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "--http-token-file" in lines[0], err
    assert not (tmp_path / "topics.db").exists(), "refused before opening the database"


@pytest.mark.parametrize("extra", ["token", "read-only"])
def test_a_non_loopback_address_with_a_token_or_read_only_serves(tmp_path, extra):
    port = free_port()
    flags = ["--http-port", str(port), "--http-address", "0.0.0.0"]
    if extra == "token":
        (tmp_path / "token").write_text("abc\n")
        flags += ["--http-token-file", str(tmp_path / "token")]
    else:
        flags.append("--http-read-only")
    proc = run_sink(tmp_path, *flags)
    try:
        def answering() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return send(f"http://127.0.0.1:{port}", "/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_until(answering, what="the sink answering on 0.0.0.0")
        answer = send(f"http://127.0.0.1:{port}", "/v1/jobs/j/topics", "POST", b'[{"key": "k"}]')
        assert answer.status == (401 if extra == "token" else 403), answer
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 0


@pytest.mark.parametrize("content", ["", "\n", "   \t\nsecond line is not the token\n", None],
                         ids=["empty", "empty-line", "blank-first-line", "missing"])
def test_a_token_file_without_a_token_exits_2(tmp_path, content):
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    proc = run_sink(tmp_path, "--http-port", str(free_port()), "--http-address", "0.0.0.0",
                    "--http-token-file", str(token))
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, (proc.returncode, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--http-token-file" in lines[0], err


def test_the_token_is_the_first_line_without_surrounding_whitespace(tmp_path):
    (tmp_path / "token").write_text("  tok-en \r\nsecond line\n")
    port = free_port()
    proc = run_sink(tmp_path, "--http-port", str(port), "--http-token-file",
                    str(tmp_path / "token"))
    url = f"http://127.0.0.1:{port}"
    try:
        def answering() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return send(url, "/healthz", timeout=2).status == 200
            except OSError:
                return False
        wait_until(answering, what="the sink answering")
        body = b'[{"key": "k"}]'
        for auth in ("Bearer   tok-en", "Bearer second line", "Bearer tok-en second line"):
            answer = send(url, "/v1/jobs/j/topics", "POST", body, {"Authorization": auth})
            assert answer.status == 401, (auth, answer)
        answer = send(url, "/v1/jobs/j/topics", "POST", body, {"Authorization": "Bearer tok-en"})
        assert answer.status == 200 and answer.doc["accepted"] == 1, answer
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert dbcheck.row_count(tmp_path / "topics.db", "j") == 1
