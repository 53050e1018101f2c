"""The typed records of the messages a state machine reads: an agent's hello, a report window
and its done record. ``messages.decode`` makes them once, from fields it has checked; the
sending side makes the fields with ``to_fields``. Past the protocol boundary nobody reads them
by string key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.window import Window

__all__ = ["RECORDS", "Done", "Hello", "ScenarioDone", "WindowReport"]


@dataclass(frozen=True)
class Hello:
    """Who an agent is: its name, host and process, its capacity (its weight in the farm's
    shares), its CPUs, and its pusher-farm, Python and key dependency versions."""

    name: str
    host: str
    pid: int
    capacity: float
    cpus: int
    package: str
    python: str = ""
    deps: Mapping[str, str] = field(default_factory=dict)

    def to_fields(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "pid": self.pid, "capacity": self.capacity, "cpus": self.cpus,
                "package": self.package, "python": self.python, "deps": dict(self.deps)}  # fmt: skip

    @classmethod
    def of(cls, f: Mapping[str, Any]) -> Hello:
        return cls(f["name"], f["host"], f["pid"], f["capacity"], f["cpus"], f["package"], f.get("python", ""),
                   dict(f.get("deps", {})))  # fmt: skip


@dataclass(frozen=True)
class WindowReport:
    """A report window an agent sent (its ``seq`` in the run). ``window`` is None when it is not
    a valid window, and ``error`` says why: it is acknowledged and named, never merged."""

    run: str
    seq: int
    window: Window | None
    error: str = ""

    @classmethod
    def of(cls, f: Mapping[str, Any]) -> WindowReport:
        try:
            return cls(f["run"], f["seq"], Window.from_wire(f["w"]))
        except (ValueError, KeyError, TypeError) as exc:
            return cls(f["run"], f["seq"], None, str(exc)[:300])


@dataclass(frozen=True)
class ScenarioDone:
    """How one scenario of a plan ended on an agent."""

    #: what its plan asked of the agent: slots (open model) or calls its members started
    planned: int
    stopped_early: bool
    #: one past the last global slot it launched, or its halt slot (None: it launched none)
    reach: int | None = None
    #: seconds from the start at which it stopped early
    stopped_s: float | None = None
    #: slots that found no work item
    starved: int = 0

    def to_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"planned": self.planned, "stopped_early": self.stopped_early, "starved": self.starved}
        if self.reach is not None:
            out["reach"] = self.reach
        if self.stopped_s is not None:
            out["stopped_s"] = self.stopped_s
        return out

    @classmethod
    def of(cls, f: Mapping[str, Any]) -> ScenarioDone:
        return cls(f["planned"], f["stopped_early"], f.get("reach"), f.get("stopped_s"), f.get("starved", 0))


@dataclass(frozen=True)
class Done:
    """An agent's run ended: how many windows it sent, how it ended, each scenario's part."""

    run: str
    windows: int
    stopped_early: bool
    #: seconds from the start to its last launch, and to the end of its last call
    sent_s: float = 0.0
    ran_s: float = 0.0
    elapsed_s: float = 0.0
    #: its CPU over the run, percent of one core
    cpu: float | None = None
    gossip_dropped: int = 0
    #: why it could not run its plan (None: it ran it)
    error: str | None = None
    scenarios: tuple[ScenarioDone, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run, "windows": self.windows, "stopped_early": self.stopped_early, "sent_s": self.sent_s,
            "ran_s": self.ran_s, "elapsed_s": self.elapsed_s, "gossip_dropped": self.gossip_dropped,
            "scenarios": [s.to_fields() for s in self.scenarios],
        }  # fmt: skip
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.error is not None:
            out["error"] = self.error
        return out

    @property
    def stopped_s(self) -> float | None:
        """When it stopped early (its latest scenario's stop), if it did."""
        stops = [s.stopped_s for s in self.scenarios if s.stopped_s is not None]
        return max(stops) if stops else None

    def reach(self, index: int) -> int | None:
        return self.scenarios[index].reach if index < len(self.scenarios) else None

    @classmethod
    def of(cls, f: Mapping[str, Any]) -> Done:
        return cls(
            run=f["run"], windows=f["windows"], stopped_early=f["stopped_early"], sent_s=f.get("sent_s", 0.0),
            ran_s=f.get("ran_s", 0.0), elapsed_s=f.get("elapsed_s", 0.0), cpu=f.get("cpu"),
            gossip_dropped=f.get("gossip_dropped", 0), error=f.get("error"),
            scenarios=tuple(ScenarioDone.of(s) for s in f.get("scenarios", ())),
        )  # fmt: skip


#: the typed record of each message type that has one
RECORDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"hello": Hello.of, "window": WindowReport.of, "done": Done.of}
