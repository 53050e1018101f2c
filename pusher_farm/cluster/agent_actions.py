"""What the agent's state machine decides: the actions it returns (the coordinator's twin of
``actions``). The driver (``agent``) carries them out; the machine never does I/O itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pusher_farm.cluster.plan import AgentPlan
from pusher_farm.core.schedule import Profile, Shard

__all__ = ["Action", "Exit", "Give", "Halt", "Launch", "Lease", "Log", "Reconnect", "Replan", "Send"]


@dataclass
class Send:
    type: str
    fields: dict[str, Any]


@dataclass
class Launch:
    """Run ``plan`` with ``target`` (on the executor's thread); a run of scenarios has one
    target per scenario (``target`` is then a tuple of them, in the plan's order)."""

    plan: AgentPlan
    target: Callable[..., Any]


@dataclass
class Replan:
    run: str
    from_slot: int
    shard: Shard
    #: the farm changed its rate (a profile with the same slots up to the change) or its cap
    profile: Profile | None = None
    overtime: int | None = None
    #: a run of scenarios: the epoch's instant and each scenario's first slot (None: users)
    at_s: float | None = None
    from_slots: tuple[int | None, ...] = ()


@dataclass
class Halt:
    """Stop scheduling the current run (at global slot ``at_slot`` when given, or at the slot
    of each scenario due ``at_s`` seconds from the start: every agent stops at the same point);
    ``abort``: at once, cancelling its calls in flight too."""

    run: str
    abort: bool
    at_slot: int | None = None
    at_s: float | None = None


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
    """Work items from the coordinator for the current run (``[seq, id, body]`` each)."""

    run: str
    items: list[list[Any]]


Action = Send | Launch | Replan | Halt | Lease | Reconnect | Exit | Log | Give
