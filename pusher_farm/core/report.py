"""The report of a run: what was asked, what happened, and the JSON contract for rigs.

``Report.to_dict()`` is the public JSON schema ``pusher-farm/report/v1``: benchmark rigs parse
it and gate CI on it, so fields are only ever added, never renamed or removed.
"""

from __future__ import annotations

import base64
import os
import platform
import socket
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.stats import Histogram
from pusher_farm.core.window import Tally

__all__ = ["Counts", "Report", "SCHEMA"]

SCHEMA = "pusher-farm/report/v1"

#: schedule lag p99 above this means the generator, not the target, was the limit
LAG_WARNING_MS = 10.0


@dataclass(frozen=True)
class Counts:
    """Every scheduled slot ends exactly once: ``scheduled == succeeded + failed + canceled``."""

    scheduled: int
    succeeded: int
    failed: int
    canceled: int

    @property
    def balanced(self) -> bool:
        return self.scheduled == self.succeeded + self.failed + self.canceled


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
    overtime: int = 0
    timeout_s: float | None = None
    stopped_early: bool = False
    gossip_dropped: int = 0
    workers: list[dict[str, Any]] = field(default_factory=list)
    agents: list[dict[str, Any]] = field(default_factory=list)
    #: plan epochs after the first (a farm that lost an agent moved its share)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    generator: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: exit status for the command line: 0 ran as asked, 1 ran but agents were lost or the
    #: run was cut short by the farm, 2 refused before any load (bad target on an agent, ...)
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
        **extra: Any,
    ) -> Report:
        t = tally.total
        counts = Counts(
            scheduled=t.started + t.canceled,
            succeeded=t.succeeded,
            failed=t.failed,
            canceled=t.canceled,
        )
        extra.setdefault("generator", generator_info())
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
        """Successful calls per second of the whole run, in-flight drain included."""
        return self.counts.succeeded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def warnings(self) -> list[str]:
        """What a reader must not miss: the generator as the limit, canceled slots, losses."""
        out = list(self.notes)
        lag_p99 = self.lag.percentile(99) / 1000
        if lag_p99 > LAG_WARNING_MS:
            out.append(
                f"schedule lag p99 is {lag_p99:.1f} ms: the generator itself fell behind, so the "
                "rate was limited by this machine, not by the target (add processes or hosts)"
            )
        if self.counts.canceled:
            out.append(
                f"{self.counts.canceled} slots were canceled because {self.overtime} calls were "
                "already in flight (raise --overtime, or the target is slower than the rate allows)"
            )
        if self.gossip_dropped:
            out.append(f"{self.gossip_dropped} gossips could not be delivered to a slow listener")
        if self.latency.clamped:
            out.append(f"{self.latency.clamped} latencies above one hour were recorded as one hour")
        for a in self.agents:
            if a.get("lost"):
                out.append(
                    f"agent {a.get('name')} (host {a.get('host')}) was lost at {a.get('lost_at_s')}s: "
                    f"its windows up to then are counted; {a.get('missed_slots', 0)} of its slots were "
                    "never reported"
                )
        if not self.counts.balanced:
            out.append("counts do not add up: scheduled != succeeded + failed + canceled")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (schema ``pusher-farm/report/v1``)."""
        return {
            "schema": SCHEMA,
            "target": self.target,
            "profile": self.profile,
            "requested_rps": round(self.requested_rps, 6),
            "duration_s": round(self.duration_s, 6),
            "send_duration_s": round(self.send_duration_s, 6),
            "elapsed_s": round(self.elapsed_s, 6),
            "achieved_rps": round(self.achieved_rps, 3),
            "throughput_rps": round(self.throughput_rps, 3),
            "overtime": self.overtime,
            "timeout_s": self.timeout_s,
            "stopped_early": self.stopped_early,
            "status": self.status,
            "counts": {
                "scheduled": self.counts.scheduled,
                "succeeded": self.counts.succeeded,
                "failed": self.counts.failed,
                "canceled": self.counts.canceled,
            },
            "errors": dict(self.errors),
            "latency_ms": self.latency.summary_ms(),
            "service_time_ms": self.service.summary_ms(),
            "schedule_lag_ms": self.lag.summary_ms(),
            "series": self.series,
            "gossip_dropped": self.gossip_dropped,
            "workers": self.workers,
            "agents": self.agents,
            "epochs": self.epochs,
            "missed_slots": sum(int(a.get("missed_slots") or 0) for a in self.agents),
            "warnings": self.warnings,
            "generator": self.generator,
            "histograms": {
                "format": "HdrHistogram V2, zlib, base64; microseconds",
                "latency": _encode(self.latency),
                "service_time": _encode(self.service),
                "schedule_lag": _encode(self.lag),
            },
        }


def _encode(h: Histogram) -> str:
    raw = h.to_hdr().encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else base64.b64encode(raw).decode("ascii")


def generator_info() -> dict[str, Any]:
    from pusher_farm.core.loop import loop_name

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "loop": loop_name(),
        "cpus": os.cpu_count(),
    }
