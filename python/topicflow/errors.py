"""The one exception type of the client."""

from __future__ import annotations

from typing import Any


class TopicflowError(Exception):
    """A request to the sink failed.

    Attributes:
        status: the HTTP status (400, 401, 403, 404, 409, 413, 503, ...), or None when no
            answer came (connection refused, timeout, a broken event stream).
        error: the server's one-line reason (its ``{"error": ...}``), or what went wrong.
        method, url: the request.
        counts: for ``Client.submit``, what earlier chunks registered before this one failed.
    """

    def __init__(self, status: int | None, error: str, method: str = "", url: str = "",
                 counts: dict[str, Any] | None = None) -> None:
        where = f" ({method} {url})" if method else ""
        prefix = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{prefix}{error}{where}")
        self.status = status
        self.error = error
        self.method = method
        self.url = url
        self.counts = counts


class WaitTimeout(TopicflowError, TimeoutError):
    """``Client.wait`` gave up at its deadline; ``job`` is the last state seen."""

    def __init__(self, job: dict[str, Any] | None, error: str) -> None:
        super().__init__(None, error)
        self.job = job
