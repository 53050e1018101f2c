"""One agent's part of a run (``AgentPlan``), as sent in the ``start`` message.

It carries every scenario's settings as ``Config`` records (nothing here copies a setting),
the agent's shard of the farm (the same weights deal every scenario's slots and members), where
its part begins (each scenario's first slot, and the instant: an agent that joins mid-run
starts later), and how many work items of each scenario it may hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pusher_farm.cluster.protocol.messages import MAX_AGENTS, MAX_CAPACITY, MAX_SCENARIOS
from pusher_farm.core.config import Config
from pusher_farm.core.scenario_run import Part
from pusher_farm.core.shard import Shard
from pusher_farm.errors import ProtocolError

__all__ = ["AgentPlan"]


@dataclass(frozen=True)
class AgentPlan:
    """One agent's part of a run (see the module docstring)."""

    run: str
    start_at: float  # on the coordinator's clock
    offset: float  # agent clock - coordinator clock, as the coordinator measured it
    index: int
    weights: tuple[float, ...]
    scenarios: tuple[Config, ...]
    #: each scenario's first global slot this plan covers (0 for a model of members)
    firsts: tuple[int, ...]
    #: seconds from the start from which this part begins (a late joiner's epoch)
    from_s: float = 0.0
    #: work items of each scenario this agent may hold (0: that scenario has no feed)
    credits: tuple[int, ...] = ()

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.weights)

    @property
    def local_start(self) -> float:
        """The start on the agent's own clock."""
        return self.start_at + self.offset

    def part(self, index: int) -> Part:
        """Scenario ``index``'s part of this plan, on the agent's clock."""
        return Part(self.shard, self.firsts[index], self.from_s, self.local_start)

    def credit(self, index: int) -> int:
        return self.credits[index] if index < len(self.credits) else 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at,
            "offset": self.offset,
            "index": self.index,
            "weights": list(self.weights),
            "scenarios": [c.to_wire() for c in self.scenarios],
            "firsts": list(self.firsts),
            "from_s": self.from_s,
            "credits": list(self.credits),
        }

    @classmethod
    def from_wire(cls, run: str, d: Mapping[str, Any]) -> AgentPlan:
        """The plan in a ``start`` message; ``ProtocolError`` for anything not valid."""
        start_at, offset, from_s = d.get("start_at"), d.get("offset"), d.get("from_s", 0.0)
        for name, value in (("start_at", start_at), ("offset", offset), ("from_s", from_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProtocolError(f"bad plan: {name} must be a finite number")
        if not 0 <= from_s < 1e9:
            raise ProtocolError("bad plan: from_s must be seconds from the start")
        index, weights = d.get("index"), d.get("weights")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_AGENTS:
            raise ProtocolError("bad plan: index must be a whole number >= 0")
        if not isinstance(weights, list) or not 0 < len(weights) <= MAX_AGENTS:
            raise ProtocolError("bad plan: weights must be a list of agents' shares")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w <= MAX_CAPACITY for w in weights):
            raise ProtocolError(f"bad plan: weights must be numbers in (0, {MAX_CAPACITY:g}]")
        if not index < len(weights):
            raise ProtocolError("bad plan: index out of range of the weights")
        raw = d.get("scenarios")
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_SCENARIOS:
            raise ProtocolError(f"bad plan: scenarios must be a list of 1 to {MAX_SCENARIOS} settings")
        scenarios = tuple(Config.from_wire(c) for c in raw)
        for c in scenarios:
            if c.target is None or c.load is None:
                raise ProtocolError(f"bad plan: scenario {c.name!r} has no target or no load model")
        if len({c.name for c in scenarios}) != len(scenarios):
            raise ProtocolError("bad plan: two scenarios share a name")
        firsts, credits = d.get("firsts"), d.get("credits", [])
        for name, values, most in (("firsts", firsts, 1 << 53), ("credits", credits, 1 << 20)):
            if (
                not isinstance(values, list)
                or len(values) not in ((len(scenarios),) if name == "firsts" else (0, len(scenarios)))
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < most for v in values)
            ):
                raise ProtocolError(f"bad plan: {name} must give each scenario a whole number")
        return cls(
            run=run,
            start_at=float(start_at),  # type: ignore[arg-type]
            offset=float(offset),  # type: ignore[arg-type]
            index=index,
            weights=tuple(float(w) for w in weights),
            scenarios=scenarios,
            firsts=tuple(firsts),  # type: ignore[arg-type]
            from_s=float(from_s),
            credits=tuple(credits),
        )
