"""topicflow: a Python client for the sink's HTTP API, and the handler side of exec-persistent.

    from topicflow import Client, TopicflowError     # applications: submit, watch, control
    from topicflow import Retry, handler              # handlers: handler.run(my_function)
"""

from . import handler
from .client import Client, TopicItem
from .errors import TopicflowError, WaitTimeout
from .handler import Retry, Task
from .sse import Event

__all__ = ["Client", "Event", "Retry", "Task", "TopicItem", "TopicflowError", "WaitTimeout",
           "handler"]
__version__ = "0.1.0"
