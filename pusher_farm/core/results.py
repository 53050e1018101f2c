"""The report of a run: what was asked and what happened, as numbers and typed records.

``core.reporting.build_report`` is the one place a report is built, in a process and on a
farm's coordinator alike. Formats (the JSON contract, the console summary and the advice in
its warnings) live in ``pusher_farm.report``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.stats import Histogram
from pusher_farm.core.tally import Tally

__all__ = [
    "AgentSummary",
    "Counts",
    "EpochSummary",
    "NameSummary",
    "Report",
    "ScenarioSummary",
    "WorkerSummary",
]


@dataclass(frozen=True)
class Counts:
    """Where every slot went. Every planned slot was scheduled or not (``unfired``: nobody
    reached it), ``planned == scheduled + unfired``; every scheduled slot ended exactly once,
    ``scheduled == succeeded + failed + canceled``."""

    scheduled: int
    succeeded: int
    failed: int
    canceled: int
    planned: int

    @property
    def unfired(self) -> int:
        return self.planned - self.scheduled

    @property
    def balanced(self) -> bool:
        return self.scheduled == self.succeeded + self.failed + self.canceled and self.unfired >= 0

    def as_dict(self) -> dict[str, int]:
        return {
            "planned": self.planned,
            "scheduled": self.scheduled,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "canceled": self.canceled,
            "unfired": self.unfired,
        }


@dataclass(frozen=True)
class WorkerSummary:
    """One worker of ``farm``/``force``: its counts (and its agent, on processes)."""

    ident: str
    kind: str
    overtime: int
    counts: Counts
    achieved_rps: float
    agent: str | None = None
    #: how far it got in the schedule (one past the last slot it launched, or its halt slot;
    #: None: it launched nothing), and when it stopped early (seconds from the start; None:
    #: it ran its schedule to the end)
    reach: int | None = None
    stopped_s: float | None = None


@dataclass(frozen=True)
class AgentSummary:
    """One agent of a farm run, as the coordinator saw it."""

    id: str
    name: str
    host: str
    pid: int
    package: str
    capacity: float
    #: its part of the farm's slots in the last epoch it ran in (0 once its share moved)
    share: float
    state: str
    counts: Counts
    clock_offset_ms: float
    rtt_ms: float | None
    lost_at_s: float | None = None
    error: str | None = None
    #: its unfired slots lay between these times (seconds from the start)
    unfired_from_s: float | None = None
    unfired_to_s: float | None = None
    cpu_percent: float | None = None
    stopped_early: bool = False
    gossip_dropped: int = 0
    #: windows it sent that were not valid, so not counted
    rejected_windows: int = 0
    cpus: int = 0
    #: its Python and key dependency versions, as it said in its hello
    python: str = ""
    dependencies: dict[str, str] = field(default_factory=dict)
    #: the slots it scheduled in each scenario (a run of scenarios)
    scenarios: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> bool:
        return self.state == "lost"


@dataclass(frozen=True)
class EpochSummary:
    """A plan epoch after the first: from ``from_slot`` (``at_s`` from the start) the slots
    were dealt among ``agents`` because of ``reason``."""

    from_slot: int
    at_s: float
    agents: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ScenarioSummary:
    """One scenario of a run: its load model and where its slots (or calls) went, merged
    across every agent. ``model`` is ``open`` (a rate), ``closed`` (users: latency is service
    time, the output is throughput) or ``drain`` (lanes on work items)."""

    name: str
    model: str
    load: str
    target: str
    start_s: float
    requested_rps: float
    duration_s: float
    counts: Counts
    errors: dict[str, int]
    latency: Histogram
    service: Histogram
    #: its work items (a scenario with a feed of its own): counts by status, attempts, retries
    items: dict[str, Any] | None = None

    @property
    def latency_is_service_time(self) -> bool:
        """A closed loop's calls start when a member is ready: it cannot see coordinated
        omission, so its latency is its service time."""
        return self.model != "open"

    @property
    def achieved_rps(self) -> float:
        span = self.duration_s
        return (self.counts.succeeded + self.counts.failed) / span if span > 0 else 0.0

    @property
    def throughput_rps(self) -> float:
        span = self.duration_s
        return self.counts.succeeded / span if span > 0 else 0.0


@dataclass(frozen=True)
class NameSummary:
    """The calls of one name (the scenario's, ``ctx.name``, or the http target's ``GET
    /users/{id}``) across every scenario and agent."""

    name: str
    succeeded: int
    failed: int
    errors: dict[str, int]
    latency: Histogram
    service: Histogram

    @property
    def calls(self) -> int:
        return self.succeeded + self.failed


@dataclass
class Report:
    target: str
    requested_rps: float
    duration_s: float
    elapsed_s: float
    counts: Counts
    errors: dict[str, int]
    latency: Histogram
    service: Histogram
    lag: Histogram
    series: list[dict[str, Any]]
    profile: str = ""
    #: from the start to the last slot's launch: longer than ``duration_s`` when the
    #: generator fell behind its schedule
    send_duration_s: float = 0.0
    #: from the start to the end of the last call (the in-flight drain included)
    ran_s: float = 0.0
    #: most calls in flight per process (per worker or agent), as ``--overtime`` says
    overtime: int = 0
    timeout_s: float | None = None
    stopped_early: bool = False
    gossip_dropped: int = 0
    workers: list[WorkerSummary] = field(default_factory=list)
    agents: list[AgentSummary] = field(default_factory=list)
    #: plan epochs after the first (a farm that lost or gained an agent moved shares)
    epochs: list[EpochSummary] = field(default_factory=list)
    generator: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: frames the coordinator dropped because they were not valid messages
    bad_frames: int = 0
    #: the phases of calls their target measured (the http target: wait, connect, tls,
    #: ttfb, receive), each only for the calls where it happened; and what the target counted
    phases: dict[str, Histogram] = field(default_factory=dict)
    target_counters: dict[str, int] = field(default_factory=dict)
    #: work items (a run with a feed): counts by status, attempts, retries, the feed's
    #: malformed lines, callbacks
    items: dict[str, Any] | None = None
    #: each threshold with its measured value and verdict (``core.thresholds``)
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    #: whether the generator, not the target, was the limit (``core.limits.verdict``)
    generator_verdict: dict[str, Any] = field(default_factory=dict)
    #: what ran, where and how: versions, the plan, hosts, the command line (``manifest``)
    manifest: dict[str, Any] = field(default_factory=dict)
    #: the windows the report was made of (per-window histograms for an HDR interval log)
    tally: Tally | None = field(default=None, repr=False, compare=False)
    #: rows per scenario and per call name (``scenario_rows`` makes them)
    scenarios: list[ScenarioSummary] = field(default_factory=list)
    names: list[NameSummary] = field(default_factory=list)
    #: exit status for the command line: 0 ran as asked, 1 ran but agents were lost or the
    #: run was aborted, 2 refused before any load (bad target on an agent, ...)
    status: int = 0

    @classmethod
    def from_tally(
        cls,
        tally: Tally,
        *,
        target: str,
        requested_rps: float,
        duration_s: float,
        elapsed_s: float,
        planned: int | None = None,
        **extra: Any,
    ) -> Report:
        """The report of the windows in ``tally``; ``planned`` slots (default: the scheduled
        ones) and the other fields as given."""
        t = tally.total
        scheduled = t.started + t.canceled
        counts = Counts(
            scheduled=scheduled,
            succeeded=t.succeeded,
            failed=t.failed,
            canceled=t.canceled,
            planned=scheduled if planned is None else planned,
        )
        names = [
            NameSummary(n, r.succeeded, r.failed, _by_count(r.errors), r.latency, r.service)
            for n, r in sorted(t.names.items(), key=lambda kv: (-(kv[1].succeeded + kv[1].failed), kv[0]))
        ]
        extra.setdefault("names", names)
        return cls(
            target=target,
            requested_rps=requested_rps,
            duration_s=duration_s,
            elapsed_s=elapsed_s,
            counts=counts,
            errors=dict(sorted(t.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
            latency=t.latency,
            service=t.service,
            lag=t.lag,
            series=tally.series(),
            phases=dict(t.phases),
            target_counters=dict(sorted(t.counters.items())),
            tally=tally,
            **extra,
        )

    @property
    def achieved_rps(self) -> float:
        """Calls started per second over the time it took to start them (canceled slots are
        not calls); a generator that fell behind stretches that time, never the schedule."""
        started = self.counts.succeeded + self.counts.failed
        span = max(self.duration_s, self.send_duration_s)
        return started / span if span > 0 else 0.0

    @property
    def throughput_rps(self) -> float:
        """Successful calls per second, from the start to the end of the last call (the
        schedule's length at least): start-up time before the first slot does not count."""
        span = max(self.duration_s, self.ran_s)
        return self.counts.succeeded / span if span > 0 else 0.0


def _by_count(errors: Any) -> dict[str, int]:
    return dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])))
