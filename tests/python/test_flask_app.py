"""examples/flask-app end to end: the app as its own process (python3 app.py --port P
--topicflow URL) in front of the server under test (real sink or fake, harness.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import REPO, free_port, wait_until

APP = REPO / "examples" / "flask-app" / "app.py"
TITLES = [t for t in (REPO / "examples" / "topics.txt").read_text().splitlines() if t.strip()]


def call(url: str, method: str = "GET", body: object = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def app(server, tmp_path_factory):
    pytest.importorskip("flask")
    port = free_port()
    log = open(tmp_path_factory.mktemp("flask") / "app.log", "wb")
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    proc = subprocess.Popen([sys.executable, str(APP), "--port", str(port),
                             "--topicflow", server.url], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"

    def answering():
        assert proc.poll() is None, Path(log.name).read_text()
        try:
            return call(f"{url}/topics/status")[0] == 200
        except OSError:
            return False

    wait_until(answering, timeout=30, what="the Flask app answering")
    yield url
    proc.terminate()
    proc.wait(timeout=15)


def test_status_before_anything_was_submitted(app):
    code, doc = call(f"{app}/topics/status")
    assert code == 200 and doc["total"] == 0 and doc["latest_errors"] == []


def test_the_288_topics_in_one_call_then_their_status(app, server):
    code, doc = call(f"{app}/topics/process", "POST")
    assert code == 202, doc
    assert (doc["submitted"], doc["accepted"], doc["duplicates"]) == (288, 288, 0)
    def settled():
        doc = call(f"{app}/topics/status")[1]
        return doc if doc["pending"] + doc["running"] == 0 else None

    final = wait_until(settled, timeout=120, what="the 288 topics done")
    assert (final["total"], final["completed"], final["failed"]) == (288, 288, 0)
    assert server.client().topic("topics", TITLES[0])["result"] == TITLES[0].upper()
    code, again = call(f"{app}/topics/process", "POST")
    assert again["skipped_completed"] == 288 and again["accepted"] == 0


def test_a_list_of_titles_and_the_latest_errors(app):
    code, doc = call(f"{app}/topics/process", "POST", ["fail: the renderer is down", "fine one"])
    assert code == 202 and doc["accepted"] == 2
    def settled():
        doc = call(f"{app}/topics/status")[1]
        return doc if doc["failed"] >= 1 and doc["pending"] + doc["running"] == 0 else None

    status = wait_until(settled, timeout=60, what="the failure recorded")
    assert status["latest_errors"][0]["key"] == "fail: the renderer is down"
    assert "the renderer is down" in status["latest_errors"][0]["error"]


def test_a_bad_body_is_400_and_submits_nothing(app):
    before = call(f"{app}/topics/status")[1]["total"]
    for body in ({"not": "a list"}, ["ok", ""], [1, 2]):
        code, doc = call(f"{app}/topics/process", "POST", body)
        assert code == 400 and "JSON list" in doc["error"], body
    assert call(f"{app}/topics/status")[1]["total"] == before


def test_the_app_never_opens_sqlite():
    source = APP.read_text()
    assert "import sqlite3" not in source and ".db" not in source
