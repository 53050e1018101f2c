"""Every timing constant of the farm, on both sides, so tests can run fast and exact.

The coordinator's ``Timing`` and the agent's ``AgentTiming`` are kept side by side because
they hold each other up: an agent's load must stop before the coordinator can give its share
away (``Timing.lease``), and an agent reconnects to a silent coordinator no sooner than its
lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

from pusher_farm.errors import InvalidOption

__all__ = ["HEARTBEAT", "AgentTiming", "Timing"]


#: the longest heartbeat period (a shorter agent timeout beats a third of it)
HEARTBEAT = 1.0


@dataclass(frozen=True)
class Timing:
    """Every timing constant of the coordinator, so tests can run fast and exact.

    ``heartbeat`` defaults to a third of ``agent_timeout``, at most ``HEARTBEAT``: a short
    timeout never loses healthy agents (``Timing(agent_timeout=1.5)`` beats every 0.5 s)."""

    heartbeat: float | None = None
    agent_timeout: float = 3.0
    wait_timeout: float = 60.0
    sync_pings: int = 5
    start_lead: float = 0.5
    #: how long after the schedule's end (+ call timeout) to wait for agents' last windows
    end_grace: float = 5.0
    #: after an abort, how long to wait for the agents' last windows before reporting
    abort_grace: float = 1.0
    #: a stop names the slot every agent stops at, due this long (+ two worst round trips)
    #: after the stop was asked for
    stop_lead: float = 0.05
    #: bad frames are logged at most once per this many seconds
    log_every: float = 5.0

    def __post_init__(self) -> None:
        for name in ("agent_timeout", "wait_timeout", "start_lead", "end_grace", "abort_grace", "stop_lead"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e7:
                raise InvalidOption(f"{name} must be a positive number of seconds, got {value!r}")
        if self.heartbeat is None:
            object.__setattr__(self, "heartbeat", min(HEARTBEAT, self.agent_timeout / 3))
        if not (0 < self.heartbeat and 2 * self.heartbeat <= self.agent_timeout):
            raise InvalidOption(
                f"the agent timeout ({self.agent_timeout:g}s) must be at least two heartbeats ({self.heartbeat:g}s)"
            )

    @property
    def lease(self) -> float:
        """How long after the coordinator last heard an agent that agent may keep its load
        going. Every message to an agent says how long ago it was last heard (``seen``), and
        the agent's load stops ``lease - seen`` after that message arrives. The coordinator
        loses an agent ``agent_timeout`` after its last message and moves its share
        ``start_lead`` (+ two round trips) later, so a silent agent (whichever way the silence
        goes) stops half a ``start_lead`` before any other agent could fire its slots."""
        return self.agent_timeout + self.start_lead / 2


@dataclass(frozen=True)
class AgentTiming:
    #: heartbeat period until the coordinator's welcome says otherwise
    heartbeat: float = 1.0
    #: a coordinator silent this long gets a fresh connection (until the welcome gives a lease)
    coordinator_timeout: float = 3.0
    #: unacknowledged windows kept for re-sending (oldest dropped beyond it)
    max_unacked: int = 3600
    #: an ``once`` agent that no coordinator ever answered gives up after this long
    connect_timeout: float = 60.0
    #: an ``once`` agent whose coordinator went silent keeps offering unacknowledged windows
    #: this long (a partition that heals in time costs nothing), then exits
    once_hold: float = 8.0
    #: seconds an agent's last messages get to leave when it exits
    linger: float = 1.0
