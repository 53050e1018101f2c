"""What the agent's state machine decides: the actions it returns (the coordinator's twin of
``coordinator.actions``). The driver (``agent``) carries them out; the machine never does I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.core.load import Load
from pusher_farm.core.shard import Shard

__all__ = ["Action", "Change", "Exit", "Give", "Halt", "Launch", "Lease", "Log", "Reconnect", "Replan", "Send"]


@dataclass
class Send:
    type: str
    fields: dict[str, Any]


@dataclass
class Launch:
    """Run ``plan`` (on the executor's thread) with one target per scenario, in its order."""

    plan: AgentPlan
    targets: tuple[Callable[..., Any], ...]


@dataclass(frozen=True)
class Change:
    """A runtime change of scenario ``index`` from the epoch's instant: its new load model (the
    same as the old up to then) and cap on calls in flight (None: unchanged)."""

    index: int
    load: Load | None = None
    overtime: int | None = None


@dataclass
class Replan:
    """A new plan epoch from ``at_s`` seconds after the start: every scenario from its first slot
    (``firsts``; a model of members: from the instant) dealt to ``shard``; ``changes`` for the
    scenarios a runtime change touched."""

    run: str
    at_s: float
    shard: Shard
    firsts: tuple[int, ...]
    changes: tuple[Change, ...] = ()


@dataclass
class Halt:
    """Stop scheduling the current run at ``at_s`` seconds from the start (each scenario at its
    point due then: every agent stops at the same one), or at once when None; only scenario
    ``scenario`` when given; ``abort``: at once, cancelling its calls in flight too."""

    run: str
    abort: bool
    at_s: float | None = None
    scenario: int | None = None


@dataclass
class Lease:
    """The current run may go on until ``until`` (on this agent's clock), and no longer."""

    until: float


@dataclass
class Reconnect:
    """Drop the connection (and what is queued on it) and say hello on a fresh one."""


@dataclass
class Exit:
    status: int
    reason: str = ""


@dataclass
class Log:
    level: str
    text: str


@dataclass
class Give:
    """Work items of scenario ``scenario`` from the coordinator (``[seq, id, body]`` each)."""

    run: str
    scenario: int
    items: list[list[Any]]


Action = Send | Launch | Replan | Halt | Lease | Reconnect | Exit | Log | Give
