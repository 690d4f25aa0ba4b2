#!/usr/bin/env python3
"""The seed's Flask app, rebuilt on topicflow: the web app hands its topics to the sink over
HTTP and reads their status from it. It never opens the SQLite file; the sink is its only
writer, so "database is locked" cannot come from here.

    PYTHONPATH=python python3 examples/flask-app/app.py --port 5000 \\
        --topicflow http://127.0.0.1:8080

    curl -X POST http://127.0.0.1:5000/topics/process                  # the 288 example titles
    curl -X POST http://127.0.0.1:5000/topics/process -H 'Content-Type: application/json' \\
         -d '["one title", "another"]'
    curl http://127.0.0.1:5000/topics/status
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

HERE = Path(__file__).resolve().parent
try:
    from topicflow import Client, TopicflowError
except ImportError:  # not installed and not on PYTHONPATH: use the source tree's client
    sys.path.insert(0, str(HERE.parent.parent / "python"))
    from topicflow import Client, TopicflowError

JOB = "topics"
DEFAULT_TOPICS = HERE.parent / "topics.txt"
COUNTS = ("pending", "running", "completed", "failed", "cancelled", "total")
LATEST_ERRORS = 5


def default_titles() -> list[str]:
    return [line.strip() for line in DEFAULT_TOPICS.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def create_app(topicflow_url: str, token: str | None = None) -> Flask:
    """The app, talking to the sink at ``topicflow_url``."""
    app = Flask(__name__)
    topicflow = Client(topicflow_url, token=token, timeout=30)

    @app.post("/topics/process")
    def process() -> Any:
        """Submits the titles (the body's JSON list, or examples/topics.txt) as job `topics`
        in one call, and answers as soon as the sink has committed them."""
        titles = default_titles()
        if request.get_data():
            titles = request.get_json(silent=True)
            if not isinstance(titles, list) or not all(
                    isinstance(t, str) and t.strip() for t in titles):
                return jsonify(error="the body must be a JSON list of non-empty titles"), 400
        counts = topicflow.submit(JOB, titles)  # the title is both key and payload
        return jsonify(job=JOB, submitted=len(titles), **counts), 202

    @app.get("/topics/status")
    def status() -> Any:
        """Counts per status and the latest errors, from the sink's API."""
        try:
            job = topicflow.job(JOB)
        except TopicflowError as e:
            if e.status != 404:
                raise
            return jsonify(job=JOB, **{name: 0 for name in COUNTS}, paused=False,
                           latest_errors=[])
        errors: list[dict[str, Any]] = []
        if job["failed"]:
            # No "latest errors" read in the API yet: one page of failed topics (key order),
            # newest first. Bounded: at most 1000 rows, whatever the job's size.
            page = topicflow.page(JOB, status="failed", limit=1000)["topics"]
            page.sort(key=lambda t: t["updated_at"], reverse=True)
            errors = [{"key": t["key"], "error": t["error"], "updated_at": t["updated_at"]}
                      for t in page[:LATEST_ERRORS]]
        return jsonify(job=JOB, **{name: job[name] for name in COUNTS}, paused=job["paused"],
                       latest_errors=errors)

    @app.errorhandler(TopicflowError)
    def topicflow_failed(e: TopicflowError) -> Any:
        code = e.status if e.status in (400, 401, 403, 413) else 502
        return jsonify(error=f"topicflow: {e.error}"), code

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="The seed's Flask app on topicflow's HTTP API")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--topicflow", default=os.environ.get("TOPICFLOW_URL",
                                                               "http://127.0.0.1:8080"),
                        help="the sink's HTTP address (its --http-port)")
    parser.add_argument("--token-file", help="the sink's --http-token-file, for writes")
    args = parser.parse_args()
    token = None
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").splitlines()[0].strip()
    create_app(args.topicflow, token).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
