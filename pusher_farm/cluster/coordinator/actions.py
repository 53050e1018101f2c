"""What the coordinator's state machine decides: its phases and the actions it returns.

The drivers carry actions out (send a message or a raw frame, hand a window to the
aggregator, log, finish); the state machine never does I/O itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from pusher_farm.core.window import Window

__all__ = ["Accept", "Action", "Finish", "Finished", "Log", "Phase", "Send", "SendFrame"]


class Phase(enum.Enum):
    WAITING = "waiting"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class Send:
    agent: str
    type: str
    fields: dict[str, Any]


@dataclass
class SendFrame:
    """Raw bytes for a peer: the refusal envelope, readable by peers of any version."""

    peer: str
    frame: bytes


@dataclass
class Accept:
    """A new (not duplicate), valid window from an agent: hand it to the aggregator."""

    agent: str
    seq: int
    window: Window


@dataclass
class Log:
    level: str
    text: str


@dataclass
class Finish:
    ok: bool
    reason: str = ""
    #: exit status for the command line: 0 ran, 1 ran with lost agents or was aborted,
    #: 2 refused before any load
    status: int = 0
    #: the kind of the error that refused the run (an agent's ``MissingTarget``, ...) and that
    #: error's reason, naming the agent
    kind: str = ""
    error: str = ""


@dataclass
class Finished:
    """Work items of scenario ``scenario`` finished (each once): hand them to its handlers
    (results file, dead letter, callbacks). Each is ``(item, record)``."""

    scenario: int
    items: list[tuple[Any, dict[str, Any]]]


Action = Send | SendFrame | Accept | Log | Finish | Finished
