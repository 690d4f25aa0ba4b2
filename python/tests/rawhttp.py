"""Raw HTTP for the e2e tests (urllib and sockets, not the client: its own care must not hide a
server's gap). Every error answer is checked against docs/api.md on the way: a JSON object
``{"error": "one-line reason"}``."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

JSON = {"Content-Type": "application/json"}


@dataclass
class Answer:
    status: int
    doc: Any
    headers: dict[str, str]

    @property
    def error(self) -> str:
        return self.doc["error"]


def check_error_body(status: int, raw: bytes, where: str) -> Any:
    """The error body of docs/api.md, or an AssertionError saying what it was instead."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{where}: {status} with a body that is not JSON: {raw[:200]!r}")
    assert isinstance(doc, dict) and set(doc) == {"error"}, f"{where}: {status} body {doc!r}"
    reason = doc["error"]
    assert isinstance(reason, str) and reason.strip(), f"{where}: empty reason {doc!r}"
    return doc


def one_line(reason: str) -> bool:
    return "\n" not in reason and "\r" not in reason


def send(base: str, path: str, method: str = "GET", body: bytes | str | Any = None,
         headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    """One request to ``base + path`` (``path`` already percent-encoded). ``body``: bytes as
    they are, a str as UTF-8, anything else as its JSON. POSTs carry Content-Type JSON unless
    ``headers`` says otherwise."""
    data: bytes | None
    if body is None:
        data = b"" if method in ("POST", "PUT", "PATCH") else None
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    all_headers = dict(JSON) if method in ("POST", "PUT", "PATCH") else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(base + path, data=data, method=method, headers=all_headers)
    where = f"{method} {path}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            doc = json.loads(raw) if kind.startswith("application/json") else raw
            return Answer(response.status, doc, dict(response.headers))
    except urllib.error.HTTPError as e:
        with e:
            raw = e.read()
            return Answer(e.code, check_error_body(e.code, raw, where), dict(e.headers))


def q(name: str) -> str:
    """One percent-encoded path segment (every reserved character encoded, "." and ".." too)."""
    if name in (".", ".."):
        return name.replace(".", "%2E")
    return urllib.parse.quote(name, safe="")


def raw_exchange(base: str, request: bytes, half_close: bool = True,
                 timeout: float = 15) -> bytes:
    """Sends ``request`` bytes as they are on a new connection, optionally closes the writing
    side, and returns everything the server sent until it closed (b"" when it sent nothing)."""
    host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
