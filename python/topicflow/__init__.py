"""topicflow: a Python client for the sink's HTTP API, and the handler side of exec-persistent.

    from topicflow import Client, TopicflowError     # applications: submit, watch, control
    from topicflow import Retry, handler              # handlers: handler.run(my_function)

``Client`` is imported on first use, so a handler co-process does not pay for urllib.
"""

from typing import Any

from . import handler
from .errors import TopicflowError, WaitTimeout
from .handler import Retry, Task
from .sse import Event

__all__ = ["Client", "Event", "Retry", "Task", "TopicItem", "TopicflowError", "WaitTimeout",
           "handler"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Client", "TopicItem"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'topicflow' has no attribute {name!r}")
