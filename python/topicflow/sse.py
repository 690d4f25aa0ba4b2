"""A Server-Sent Events parser (the subset the sink sends: event, data, comments)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


@dataclass(frozen=True)
class Event:
    """One event of ``/v1/events``: ``type`` is "job", "sink" or "deleted"; ``data`` its JSON
    (a dict), or the raw text when it is not JSON."""

    type: str
    data: Any


def parse(lines: Iterable[bytes]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream (bytes, with or without line endings)."""
    kind, data = "", []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    value: Any = json.loads(text)
                except ValueError:
                    value = text
                yield Event(kind or "message", value)
            kind, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment: keep-alive
        name, _, value_text = line.partition(":")
        if value_text.startswith(" "):
            value_text = value_text[1:]
        if name == "event":
            kind = value_text
        elif name == "data":
            data.append(value_text)
        # "id" and "retry" are not used by the sink: a reconnect gets the current state.
