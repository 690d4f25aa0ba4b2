#!/usr/bin/env python3
"""fake_sink.py: the sink's HTTP API (docs/api.md) and dashboard over in-memory state, in the
standard library, for developing and unit-testing the dashboard and the Python client.

    python3 python/tests/fake_sink.py --port 0 [--workers 2 --slots 4] [--token-file F]
                                      [--read-only] [--web-dir sink/web]

Prints "listening on http://127.0.0.1:PORT" on its first line of stdout. Simulated workers run
each topic as python/tests/behaviour.py says (payload "sleep:200 fail" etc.). Beyond docs/api.md
it serves GET /v1/server ({"version", "read_only", "auth"}), proposed for the real sink.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import mimetypes
import os
import queue
import sys
import tempfile
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_store import STATUSES, ApiError, Store, payload_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ACTIONS = {"pause", "resume", "cancel", "retry-failed"}


def segment(raw: str, what: str, max_bytes: int) -> str:
    try:
        text = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"{what} is not valid UTF-8") from None
    if not text or len(text.encode()) > max_bytes:
        raise ApiError(400, f"{what} must be 1 to {max_bytes} bytes")
    return text


def parse_topics(body: bytes) -> list[tuple[str, bytes]]:
    """Validates a whole POST body first: 400 naming the first bad element, nothing registered."""
    try:
        items = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"body is not JSON: {e}") from None
    if not isinstance(items, list):
        raise ApiError(400, "body must be a JSON array of topics")
    if len(items) > 100_000:
        raise ApiError(413, "at most 100000 topics per request")
    out = []
    for i, item in enumerate(items):
        where = f"topics[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where}: must be an object")
        key = item.get("key")
        try:
            ok = isinstance(key, str) and 0 < len(key.encode("utf-8")) <= 4096
        except UnicodeEncodeError:
            ok = False
        if not ok:
            raise ApiError(400, f"{where}: key must be a non-empty string")
        if "payload" in item and "payload_base64" in item:
            raise ApiError(400, f"{where}: payload and payload_base64 are exclusive")
        if "payload_base64" in item:
            try:
                payload = base64.b64decode(item["payload_base64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ApiError(400, f"{where}: payload_base64 is not base64") from None
        else:
            try:
                payload = payload_text(item.get("payload", ""))
            except UnicodeEncodeError:
                raise ApiError(400, f"{where}: payload is not valid UTF-8") from None
        out.append((key, payload))
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeSink"

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(fmt, *args)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def dispatch(self, method: str) -> None:
        try:
            raw_path, _, raw_query = self.path.partition("?")
            try:
                query = urllib.parse.parse_qs(raw_query, keep_blank_values=True,
                                              errors="strict")
            except UnicodeDecodeError:
                raise ApiError(400, "query is not valid UTF-8") from None
            self.route(method, raw_path, {k: v[-1] for k, v in query.items()})
        except ApiError as e:
            self.reply(e.status, {"error": e.reason})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, method: str, path: str, query: dict[str, str]) -> None:
        if not path.startswith("/v1/"):
            return self.static(method, path)
        parts = path[len("/v1/"):].split("/")
        if method in ("POST", "DELETE"):
            self.check_write()
        store = self.server.store
        if parts == ["jobs"]:
            self.allow(method, "GET")
            with store.lock:
                jobs = [store.jobs[n].view() for n in sorted(store.jobs) if store.jobs[n].topics]
            return self.reply(200, {"jobs": jobs})
        if parts == ["events"]:
            self.allow(method, "GET")
            return self.events(query.get("job"))
        if parts == ["workers"]:
            self.allow(method, "GET")
            return self.reply(200, {"workers": store.workers()})
        if parts == ["server"] and self.server.server_info:
            self.allow(method, "GET")
            return self.reply(200, {"version": "fake", "read_only": self.server.read_only,
                                    "auth": self.server.token is not None})
        if len(parts) < 2 or parts[0] != "jobs":
            raise ApiError(404, "no such endpoint")
        job = segment(parts[1], "job", 256)
        rest = parts[2:]
        if not rest:
            self.allow(method, "GET", "DELETE")
            if method == "DELETE":
                return self.reply(200, store.delete(job))
            with store.lock:
                return self.reply(200, store.job(job).view())
        if len(rest) == 1 and rest[0] in ACTIONS:
            self.allow(method, "POST")
            self.body()
            if rest[0] in ("pause", "resume"):
                return self.reply(200, store.set_paused(job, rest[0] == "pause"))
            if rest[0] == "cancel":
                return self.reply(200, store.cancel(job))
            return self.reply(200, store.retry_failed(job))
        if rest == ["topics"]:
            self.allow(method, "GET", "POST")
            if method == "POST":
                return self.reply(200, store.submit(job, parse_topics(self.body())))
            return self.reply(200, self.page(job, query))
        if len(rest) == 2 and rest[0] == "topics":
            self.allow(method, "GET")
            key = segment(rest[1], "key", 4096)
            wait = number(query.get("wait", "0"), "wait", 0, 60)
            return self.reply(200, store.topic(job, key, wait))
        raise ApiError(404, "no such endpoint")

    def page(self, job: str, query: dict[str, str]) -> dict[str, Any]:
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
        if "after" in query and "from" in query:
            raise ApiError(400, "after and from are exclusive")
        limit = int(number(query.get("limit", "100"), "limit", 1, 1000))
        return self.server.store.page(job, status, query.get("after"), query.get("from"), limit)

    def check_write(self) -> None:
        if self.server.read_only:
            raise ApiError(403, "read-only server: writes are refused")
        origin = self.headers.get("Origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != self.headers.get("Host"):
            raise ApiError(403, "cross-site request refused")
        if self.headers.get("Sec-Fetch-Site") == "cross-site":
            raise ApiError(403, "cross-site request refused")
        token = self.server.token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            raise ApiError(401, "missing or wrong bearer token")

    def allow(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, f"{method} not allowed here (allowed: {', '.join(allowed)})")

    def body(self) -> bytes:
        if self.command == "POST":
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                raise ApiError(400, "Content-Type must be application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.max_body:
            self.close_connection = True
            raise ApiError(413, f"body larger than {self.server.max_body} bytes")
        return self.rfile.read(length)

    def reply(self, status: int, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def static(self, method: str, path: str) -> None:
        self.allow(method, "GET")
        if path in ("/healthz", "/metrics"):
            text = b"ok\n" if path == "/healthz" else b"# fake sink\nsink_up 1\n"
            return self.raw(200, "text/plain; charset=utf-8", text)
        name = "index.html" if path == "/" else path.lstrip("/")
        file = os.path.join(self.server.web_dir, name)
        if "/" in name or not os.path.isfile(file):
            raise ApiError(404, "no such page")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        with open(file, "rb") as f:
            self.raw(200, ctype + "; charset=utf-8", f.read())

    def raw(self, status: int, ctype: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def events(self, job: str | None) -> None:
        store = self.server.store
        q = store.subscribe(job)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            while not store.stopping.is_set():
                try:
                    event, data = q.get(timeout=15)
                    text = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                except queue.Empty:
                    text = ": keep-alive\n\n"
                self.wfile.write(text.encode("utf-8"))
                self.wfile.flush()
        finally:
            store.unsubscribe(q)


def number(raw: str, name: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be {low:g} to {high:g}")
    return value


class FakeSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__((args.address, args.port), Handler)
        self.store = Store(args.workers, args.slots, args.max_attempts,
                           args.state_dir or tempfile.mkdtemp(prefix="fake-sink-"),
                           args.sink_event_ms)
        self.read_only = args.read_only
        self.token = None
        if args.token_file:
            with open(args.token_file, encoding="utf-8") as f:
                self.token = f.readline().strip()
        self.web_dir = args.web_dir
        self.max_body = args.max_body_bytes
        self.verbose = args.verbose
        self.server_info = not args.no_server_info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--workers", type=int, default=2, help="simulated workers (0: none connected)")
    p.add_argument("--slots", type=int, default=4, help="topics at once per worker")
    p.add_argument("--max-attempts", type=int, default=3)
    p.add_argument("--token-file")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--max-body-bytes", type=int, default=32 << 20)
    p.add_argument("--sink-event-ms", type=int, default=1000)
    p.add_argument("--state-dir", help="behaviour.py's marker files (default: a temp dir)")
    p.add_argument("--web-dir", default=os.path.join(HERE, "..", "..", "sink", "web"))
    p.add_argument("--preload", help='JSON file {"job": [topics...]} registered at start-up')
    p.add_argument("--no-server-info", action="store_true",
                   help="no GET /v1/server (as docs/api.md today): clients must probe")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    server = FakeSink(args)
    if args.preload:
        with open(args.preload, encoding="utf-8") as f:
            for job, items in json.load(f).items():
                server.store.submit(job, parse_topics(json.dumps(items).encode()))
        server.store.wait_idle()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
