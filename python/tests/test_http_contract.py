"""docs/api.md's HTTP rules that no client call shows: methods, cross-site writes, bodies,
answers as JSON errors. Raw urllib, so the client's own care cannot hide a server's gap."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def send(url: str, method: str, body: bytes | None = None, **headers: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_errors_are_json_with_a_reason(server):
    code, doc = send(f"{server.url}/v1/jobs/no-such-job", "GET")
    assert code == 404 and isinstance(doc["error"], str) and doc["error"]


def test_a_wrong_method_is_405(server):
    code, doc = send(f"{server.url}/v1/jobs", "PUT", b"[]", **{"Content-Type": "application/json"})
    assert code == 405, doc


def test_a_cross_site_write_is_refused(server, job_name):
    url = f"{server.url}/v1/jobs/{job_name}/topics"
    body = b'[{"key": "k"}]'
    code, _ = send(url, "POST", body, **{"Content-Type": "application/json",
                                         "Origin": "http://evil.example"})
    assert code == 403
    code, _ = send(url, "POST", body, **{"Content-Type": "application/json",
                                         "Sec-Fetch-Site": "cross-site"})
    assert code == 403
    code, _ = send(url, "POST", body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= code < 500, "a plain form's body must not register topics"
    assert send(f"{server.url}/v1/jobs/{job_name}", "GET")[0] == 404


@pytest.mark.parametrize("body", [b"not json", b'{"key": "k"}', b'[{"key": ""}]',
                                  b'[{"key": "a"}, 5]', b'[{"key": "k", "payload_base64": "*"}]'])
def test_a_malformed_body_is_400_and_registers_nothing(server, job_name, body):
    code, doc = send(f"{server.url}/v1/jobs/{job_name}/topics", "POST", body,
                     **{"Content-Type": "application/json"})
    assert code == 400 and doc["error"], doc
    assert send(f"{server.url}/v1/jobs/{job_name}", "GET")[0] == 404


def test_the_same_origin_may_write(server, job_name):
    host = server.url.split("//", 1)[1]
    code, doc = send(f"{server.url}/v1/jobs/{job_name}/topics", "POST", b'[{"key": "k"}]',
                     **{"Content-Type": "application/json", "Origin": f"http://{host}",
                        "Sec-Fetch-Site": "same-origin"})
    assert code == 200 and doc["accepted"] == 1, doc
