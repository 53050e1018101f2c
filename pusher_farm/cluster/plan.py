"""What a farm runs (``RunSpec``) and one agent's part of it (``AgentPlan``), as plain data.

Both carry the run's settings as ``Config`` records: nothing here copies a setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pusher_farm.cluster.protocol import MAX_AGENTS, MAX_CAPACITY
from pusher_farm.core.config import Config
from pusher_farm.core.schedule import Constant, Profile, Shard
from pusher_farm.errors import InvalidOption, ProtocolError

__all__ = ["MAX_SCENARIOS", "AgentPlan", "RunSpec"]

#: the most scenarios one run may have
MAX_SCENARIOS = 64


@dataclass(frozen=True)
class RunSpec:
    """A farm run: one ``Config`` whose profile is the *total* rate, sharded among the agents
    by weight; or (the Python ``farm``) one ``Config`` per agent, each run whole by its agent.
    Every config names its target and has a profile; they share the report window, the cut
    and the farm's policies (``on_agent_loss``, ``late_join``), which ``policy`` holds."""

    configs: tuple[Config, ...]
    #: the configs are the run's scenarios, each sharded among all agents by the same weights
    #: (False: one config is sharded; several are one per agent, each run whole)
    scenarios: bool = False

    def __post_init__(self) -> None:
        if not self.configs:
            raise InvalidOption("a run needs at least one target")
        for c in self.configs:
            if c.target is None or (c.profile is None and not c.parallel and c.users is None):
                raise InvalidOption(
                    "every target of a farm run needs a name and a load: a rate profile, users or drain lanes"
                )
            if c.parallel and c.profile is not None and not isinstance(c.profile, Constant):
                raise InvalidOption("drain mode takes a rate cap (--rps), not stages")
        if self.scenarios:
            if len({c.name for c in self.configs}) != len(self.configs):
                raise InvalidOption("every scenario of a run needs a name of its own")
            if len(self.configs) > MAX_SCENARIOS:
                raise InvalidOption(f"a run holds at most {MAX_SCENARIOS} scenarios")
            if len(self.configs) > 1 and any(c.feed is not None or c.parallel for c in self.configs):
                raise InvalidOption(
                    "a feed (or drain lanes) in a run of several scenarios is not supported yet: run that "
                    "scenario on its own"
                )
        if self.scenarios and any(c.users is not None for c in self.configs):
            for text in self.configs[0].thresholds:
                if "requested" in text:
                    raise InvalidOption(
                        f"threshold {text!r}: a closed-model scenario has no requested rate; judge the run by "
                        "throughput_rps, latency or error_rate instead"
                    )
        first = self.configs[0]
        shared = ["window"] + ([] if self.scenarios else ["until"])
        shared += [f.name for f in fields(Config) if f.metadata["scope"] == "farm"]
        for c in self.configs[1:]:
            for name in shared:
                if getattr(c, name) != getattr(first, name):
                    raise InvalidOption(f"every worker of a farm run needs the same {name}")

    @property
    def sharded(self) -> bool:
        """Every agent runs a share of every config (else each runs its own config whole)."""
        return len(self.configs) == 1 or self.scenarios

    @property
    def one_rate(self) -> bool:
        """One open-model rate shared by the farm: plan epochs can move it (a lost agent's
        share, a runtime change)."""
        c = self.configs[0]
        return len(self.configs) == 1 and c.profile is not None and not c.parallel and c.users is None

    def length(self) -> float:
        """Seconds from the start to the end of the last config's schedule."""
        return max(c.end() for c in self.configs)

    @property
    def policy(self) -> Config:
        """The settings shared by the whole run (window, cut, farm policies)."""
        return self.configs[0]

    def config_for(self, index: int) -> Config:
        return self.configs[0] if self.sharded else self.configs[index]

    def profile_for(self, index: int) -> Profile | None:
        """The rate profile of agent ``index``'s config (None: drain mode without a cap)."""
        return self.config_for(index).profile

    @property
    def drain(self) -> bool:
        """Drain mode: every agent keeps its lanes busy on items until none is left."""
        return bool(self.configs[0].parallel)


@dataclass(frozen=True)
class AgentPlan:
    """One agent's part of a run, as sent in the ``start`` message."""

    run: str
    start_at: float  # on the coordinator's clock
    offset: float  # agent clock - coordinator clock, as the coordinator measured it
    index: int
    weights: tuple[float, ...] | None  # None: this agent owns every slot of its profile
    #: the first global slot this plan covers (an agent that joins mid-run starts later)
    first: int
    config: Config
    #: work items this agent may hold (0: the run has no feed)
    credit: int = 0
    #: a run of scenarios: each one's settings (``config`` is the first); empty otherwise
    scenarios: tuple[Config, ...] = ()
    #: an agent joining a run of scenarios: each scenario's first slot (-1: users) and the
    #: instant (seconds from the start) its users are its own from
    firsts: tuple[int, ...] = ()
    from_s: float = 0.0

    def first_of(self, index: int) -> int:
        """The first global slot of config ``index`` this plan covers."""
        if index < len(self.firsts) and self.firsts[index] >= 0:
            return self.firsts[index]
        return self.first if not self.firsts else 0

    @property
    def configs(self) -> tuple[Config, ...]:
        """The configs this agent runs, each with this plan's shard: the scenarios, or the one."""
        return self.scenarios or (self.config,)

    @property
    def profile(self) -> Profile:
        """The rate profile (a rate-mode plan's; drain mode without a cap has none)."""
        assert self.config.profile is not None
        return self.config.profile

    @property
    def shard(self) -> Shard | None:
        return None if self.weights is None else Shard(self.index, self.weights)

    @property
    def local_start(self) -> float:
        """The start on the agent's own clock."""
        return self.start_at + self.offset

    def to_wire(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at,
            "offset": self.offset,
            "index": self.index,
            "weights": None if self.weights is None else list(self.weights),
            "first": self.first,
            "config": self.config.to_wire(),
            "credit": self.credit,
            **({"scenarios": [c.to_wire() for c in self.scenarios]} if self.scenarios else {}),
            **({"firsts": list(self.firsts), "from_s": self.from_s} if self.firsts else {}),
        }

    @classmethod
    def from_wire(cls, run: str, d: Mapping[str, Any]) -> AgentPlan:
        """The plan in a ``start`` message; ``ProtocolError`` for anything not valid."""
        start_at, offset = d.get("start_at"), d.get("offset")
        for name, value in (("start_at", start_at), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProtocolError(f"bad plan: {name} must be a finite number")
        index, first, weights = d.get("index"), d.get("first"), d.get("weights")
        for name, value in (("index", index), ("first", first)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
                raise ProtocolError(f"bad plan: {name} must be a whole number >= 0")
        if weights is not None:
            if not isinstance(weights, list) or not 0 < len(weights) <= MAX_AGENTS:
                raise ProtocolError("bad plan: weights must be a list of agents' shares")
            if not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w <= MAX_CAPACITY for w in weights
            ):
                raise ProtocolError(f"bad plan: weights must be numbers in (0, {MAX_CAPACITY:g}]")
            if not index < len(weights):
                raise ProtocolError("bad plan: index out of range of the weights")
        config = Config.from_wire(d.get("config"))
        raw = d.get("scenarios", [])
        if not isinstance(raw, list) or len(raw) > MAX_SCENARIOS:
            raise ProtocolError(f"bad plan: scenarios must be a list of at most {MAX_SCENARIOS} settings")
        scenarios = tuple(Config.from_wire(c) for c in raw)
        for c in (config, *scenarios):
            if c.target is None or (c.profile is None and not c.parallel and c.users is None):
                raise ProtocolError("bad plan: no target or no load (rate profile, users or lanes)")
        if len({c.name for c in scenarios}) != len(scenarios):
            raise ProtocolError("bad plan: two scenarios share a name")
        firsts, from_s = d.get("firsts", []), d.get("from_s", 0.0)
        if (
            not isinstance(firsts, list)
            or len(firsts) not in (0, len(scenarios) or 1)
            or not all(isinstance(f, int) and not isinstance(f, bool) and -1 <= f < 1 << 53 for f in firsts)
        ):
            raise ProtocolError("bad plan: firsts must give each scenario's first slot")
        if isinstance(from_s, bool) or not isinstance(from_s, (int, float)) or not 0 <= from_s < 1e9:
            raise ProtocolError("bad plan: from_s must be seconds from the start")
        credit = d.get("credit", 0)
        if isinstance(credit, bool) or not isinstance(credit, int) or not 0 <= credit <= 1 << 20:
            raise ProtocolError("bad plan: credit must be a whole number of items")
        return cls(
            run=run,
            start_at=float(start_at),
            offset=float(offset),
            index=index,
            weights=None if weights is None else tuple(float(w) for w in weights),
            first=first,
            config=config,
            credit=credit,
            scenarios=scenarios,
            firsts=tuple(firsts),
            from_s=float(from_s),
        )
