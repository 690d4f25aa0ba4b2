"""Pieces that need no server: the SSE parser, URL building, the handler loop."""

from __future__ import annotations

import io
import json

import pytest

from topicflow import Client, Retry, handler, sse


def test_sse_parser_joins_data_lines_and_skips_comments():
    stream = [b": keep-alive\n", b"\n", b"event: job\n", b'data: {"job":\n', b'data: "a"}\n',
              b"\n", b"data: plain text\r\n", b"\r\n", b"event: sink\n", b"data: {}\n"]
    events = list(sse.parse(stream))
    assert events == [sse.Event("job", {"job": "a"}), sse.Event("message", "plain text")]


def test_urls_percent_encode_every_part():
    tf = Client("http://h:1/")
    assert tf.url_of(["jobs", "night/ly", "topics", "a b/ü"]) == \
        "http://h:1/v1/jobs/night%2Fly/topics/a%20b%2F%C3%BC"
    assert tf.url_of(["jobs", "j", "topics"], {"after": "a&b", "status": None, "limit": 5}) == \
        "http://h:1/v1/jobs/j/topics?after=a%26b&limit=5"


def test_submit_rejects_what_is_not_a_topic():
    with pytest.raises(TypeError):
        Client("http://h:1").submit("j", [42])


def run_lines(function, *requests):
    out = io.StringIO()
    handler.run(function, io.StringIO("".join(r + "\n" for r in requests)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_handler_answers_each_request_with_one_line():
    def work(task: handler.Task):
        print("a log line that must not reach stdout")
        if task.key == "retry":
            raise Retry("busy")
        if task.key == "bad":
            raise ValueError("no words")
        if task.key == "bug":
            raise KeyError("x")
        if task.key == "bin":
            return {"bytes": len(task.payload), "binary": isinstance(task.payload, bytes)}
        return task.payload.upper()

    got = run_lines(work,
                    '{"job":"j","key":"ok","attempt":1,"payload":"abc"}',
                    '{"job":"j","key":"retry","attempt":2,"payload":""}',
                    '{"job":"j","key":"bad","attempt":1,"payload":""}',
                    '{"job":"j","key":"bug","attempt":1,"payload":""}',
                    '{"job":"j","key":"bin","attempt":1,"payload_base64":"/wA="}',
                    "not json")
    assert got == [{"status": "completed", "result": "ABC"},
                   {"status": "retry", "error": "busy"},
                   {"status": "failed", "error": "no words"},
                   {"status": "failed", "error": "KeyError: 'x'"},
                   {"status": "completed", "result": {"bytes": 2, "binary": True}},
                   {"status": "failed", "error": got[5]["error"]}]
    assert got[5]["error"].startswith("bad request line")


def test_handler_reports_results_that_cannot_travel():
    got = run_lines(lambda t: b"\xff", '{"key":"k","payload":"x"}')
    assert got[0]["status"] == "failed" and "UTF-8" in got[0]["error"]
    got = run_lines(lambda t: {1, 2}, '{"key":"k","payload":"x"}')
    assert got[0]["status"] == "failed" and "not JSON" in got[0]["error"]
