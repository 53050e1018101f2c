"""Who is in the farm: one record per agent, its state, its clock and its window ledger.

Agents are known by their transport identity. Their clock offset is measured NTP-style by the
coordinator's pings: of a few round trips the fastest wins (its offset has the least error).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.cluster.ledger import Ledger
from pusher_farm.core.schedule import Shard

__all__ = ["WATCHED", "AgentRecord", "AgentState", "clock_sample"]


class AgentState(enum.Enum):
    SYNCING = "syncing"  # said hello, clock being measured
    SYNCED = "synced"
    PREPARED = "prepared"  # target resolved on its host
    RUNNING = "running"
    DONE = "done"  # said done and every window it counted is in
    LEFT = "left"  # done, then said bye: gone as it should be
    LOST = "lost"  # silent past the timeout, or gone before it was done
    SPARE = "spare"  # connected beyond the expected number, or too late: not in this run


#: states whose silence makes an agent lost
WATCHED = frozenset({AgentState.SYNCING, AgentState.SYNCED, AgentState.PREPARED, AgentState.RUNNING})

#: round-trip samples kept per agent (the fastest wins; a flood of pongs cannot grow memory)
_SAMPLES = 16


def clock_sample(t0: float, t1: float, t2: float, now: float) -> tuple[float, float] | None:
    """(round trip, agent clock - coordinator clock) of a ping sent at ``t0``, received by the
    agent at ``t1``, answered at ``t2`` and back at ``now``; None when the times cannot be."""
    if not (t0 <= now and t1 <= t2):
        return None
    rtt = (now - t0) - (t2 - t1)
    if rtt < 0:
        return None
    return rtt, ((t1 - t0) + (t2 - now)) / 2


@dataclass
class AgentRecord:
    id: str
    name: str
    host: str
    pid: int
    capacity: float
    cpus: int
    package: str
    state: AgentState
    joined: float
    last_seen: float
    last_sent: float = -1e18
    index: int = -1
    share: float = 0.0
    #: the slots this agent fires under the current plan epoch (sharded runs)
    shard: Shard | None = None
    #: connected after the run started (late join)
    joining: bool = False
    #: lost, then reconnected: its remaining windows are awaited (until the deadline)
    returned: bool = False
    #: the slot from which its share moved to others (it must stop there), once lost
    share_ends: int | None = None
    #: a run of scenarios: the instant (seconds from the start) its share moved to the others
    share_ends_s: float | None = None
    told_to_stop: bool = False
    samples: list[tuple[float, float]] = field(default_factory=list)  # (rtt, offset)
    pings_sent: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    #: the end of the latest window received, in seconds from the start
    reported_until_s: float = 0.0
    #: windows it sent that were not valid (acknowledged, never merged)
    rejected: int = 0
    error: str = ""
    error_kind: str = ""
    lost_at: float | None = None
    #: what it said of itself (checked fields of heartbeat and done: cpu, sent_s, reach, ...)
    stats: dict[str, Any] = field(default_factory=dict)
    #: its Python and key dependency versions (from its hello)
    python: str = ""
    deps: dict[str, str] = field(default_factory=dict)

    @property
    def offset(self) -> float:
        """agent clock - coordinator clock, from the ping with the smallest round trip."""
        return min(self.samples)[1] if self.samples else 0.0

    @property
    def rtt(self) -> float:
        return min(self.samples)[0] if self.samples else math.nan

    def add_sample(self, rtt: float, offset: float) -> None:
        self.samples.append((rtt, offset))
        if len(self.samples) > _SAMPLES:
            self.samples = sorted(self.samples)[: _SAMPLES // 2]

    @property
    def stopped_early(self) -> bool:
        return bool(self.stats.get("stopped_early", False))

    def label(self) -> str:
        return f"agent {self.name!r} (host {self.host}, pid {self.pid})"
