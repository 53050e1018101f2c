"""What an agent is told to run: the run's spec and one agent's plan, as plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.config import DEFAULT_BATCH, DEFAULT_OVERTIME, DEFAULT_TIMEOUT
from pusher_farm.core.schedule import Constant, Profile, Shard, Stage, Stages
from pusher_farm.errors import ProtocolError

__all__ = ["AgentPlan", "RunSpec", "Task", "profile_from_wire"]


@dataclass(frozen=True)
class Task:
    """One target with its settings. A farm run has one task shared by every agent, or (the
    Python ``farm``) one task per agent."""

    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    profile: Profile | None = None
    overtime: int = DEFAULT_OVERTIME
    timeout: float | None = DEFAULT_TIMEOUT
    spin: float = 0.0
    batch: float = DEFAULT_BATCH


@dataclass(frozen=True)
class RunSpec:
    """A farm run. With ``tasks`` of one entry the profile is the *total* rate, sharded among
    the agents by weight; with one task per agent each runs its own profile unsharded."""

    tasks: tuple[Task, ...]
    until: float | None = None
    window: float = 1.0
    #: what losing an agent mid-run does: move its share to the others from the next plan
    #: epoch ("rebalance"), stop the run ("abort"), or carry on without it ("continue")
    on_agent_loss: str = "rebalance"
    #: an agent that connects mid-run gets a share from the next epoch
    late_join: bool = True

    def __post_init__(self) -> None:
        if self.on_agent_loss not in ("rebalance", "abort", "continue"):
            raise ValueError(f"on_agent_loss must be rebalance, abort or continue, got {self.on_agent_loss!r}")

    @property
    def sharded(self) -> bool:
        return len(self.tasks) == 1

    def task_for(self, index: int) -> Task:
        return self.tasks[0] if self.sharded else self.tasks[index]


@dataclass(frozen=True)
class AgentPlan:
    """One agent's part of a run, as sent in the ``start`` message."""

    run: str
    start_at: float  # on the coordinator's clock
    offset: float  # agent clock - coordinator clock, as the coordinator measured it
    stages: tuple[Stage, ...]
    until: float | None
    index: int
    weights: tuple[float, ...] | None  # None: this agent owns every slot of its profile
    overtime: int
    timeout: float | None
    window: float
    spin: float
    batch: float
    #: the first global slot this plan covers (an agent that joins mid-run starts later)
    first: int = 0

    @property
    def profile(self) -> Profile:
        return profile_from_wire(_stages_to_wire(self.stages))

    @property
    def shard(self) -> Shard | None:
        return None if self.weights is None else Shard(self.index, self.weights)

    @property
    def local_start(self) -> float:
        return self.start_at + self.offset

    def to_wire(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at,
            "offset": self.offset,
            "stages": _stages_to_wire(self.stages),
            "until": self.until,
            "index": self.index,
            "weights": None if self.weights is None else list(self.weights),
            "overtime": self.overtime,
            "timeout": self.timeout,
            "window": self.window,
            "spin": self.spin,
            "batch": self.batch,
            "first": self.first,
        }

    @classmethod
    def from_wire(cls, run: str, d: Mapping[str, Any]) -> AgentPlan:
        try:
            stages = profile_from_wire(d["stages"]).stages
            weights = d["weights"]
            plan = cls(
                run=run,
                start_at=float(d["start_at"]),
                offset=float(d["offset"]),
                stages=stages,
                until=None if d["until"] is None else float(d["until"]),
                index=int(d["index"]),
                weights=None if weights is None else tuple(float(w) for w in weights),
                overtime=int(d["overtime"]),
                timeout=None if d["timeout"] is None else float(d["timeout"]),
                window=float(d["window"]),
                spin=float(d["spin"]),
                batch=float(d["batch"]),
                first=int(d.get("first", 0)),
            )
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(f"bad plan: {type(exc).__name__}: {exc}") from None
        if plan.first < 0 or plan.overtime < 0 or not (plan.window > 0) or not math.isfinite(plan.start_at):
            raise ProtocolError("bad plan: overtime, window or start time out of range")
        if plan.weights is not None:
            plan.shard  # noqa: B018 - validates index and weights
        return plan


def _stages_to_wire(stages: tuple[Stage, ...]) -> list[list[float]]:
    return [[s.duration, s.start, s.end] for s in stages]


def profile_from_wire(stages: Any) -> Profile:
    if not isinstance(stages, list) or not stages or len(stages) > 10_000:
        raise ProtocolError("bad plan: stages must be a non-empty list")
    parsed = []
    for s in stages:
        if not (isinstance(s, list) and len(s) == 3 and all(isinstance(x, (int, float)) for x in s)):
            raise ProtocolError("bad plan: a stage is [duration, from, to]")
        parsed.append(Stage(float(s[0]), float(s[1]), float(s[2])))
    try:
        if len(parsed) == 1 and parsed[0].start == parsed[0].end:
            only = parsed[0]
            return Constant(only.start, None if math.isinf(only.duration) else only.duration)
        return Stages(parsed)
    except Exception as exc:
        raise ProtocolError(f"bad plan: {exc}") from None
