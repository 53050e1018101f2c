"""The one way a run's report is made, in this process or on a farm's coordinator.

Whoever ran the load says what happened as an ``Outcome`` (typed: the run, its merged windows,
each scenario's planned calls, how long it sent and ran, its agents or workers, its epochs);
``build_report`` turns it into a ``Report``, and ``finish_report`` adds what every run's report
has: the manifest (what ran where), the work items, the generator's verdict on itself and the
thresholds' verdicts.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.core.config import Config
from pusher_farm.core.limits import verdict
from pusher_farm.core.results import (
    AgentSummary,
    Counts,
    EpochSummary,
    Report,
    ScenarioSummary,
    WorkerSummary,
)
from pusher_farm.core.run import Run
from pusher_farm.core.tally import Tally
from pusher_farm.core.thresholds import judge
from pusher_farm.core.window import Window

__all__ = ["KEY_PACKAGES", "Outcome", "build_report", "finish_report", "manifest", "versions"]


@dataclass
class Outcome:
    """What a run did, whatever ran it: the input of ``build_report``."""

    run: Run
    tally: Tally
    #: each scenario's planned calls, by name (slots of its schedule; a model of members: the
    #: calls it started)
    planned: Mapping[str, int]
    elapsed_s: float
    #: from the start to the last launch, and to the end of the last call (its longest process)
    sent_s: float
    ran_s: float
    #: it stopped before its load's end (a stop, a halt, a lost process, a cut)
    stopped_early: bool
    #: what it targeted, as the report names it (default: the scenarios' target names)
    target: str = ""
    gossip_dropped: int = 0
    notes: list[str] = field(default_factory=list)
    workers: list[WorkerSummary] = field(default_factory=list)
    agents: list[AgentSummary] = field(default_factory=list)
    epochs: list[EpochSummary] = field(default_factory=list)
    bad_frames: int = 0
    status: int = 0
    #: each scenario's work items (a scenario with a feed of its own), by name
    items: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def build_report(o: Outcome) -> Report:
    """The report of ``o`` (see the module docstring)."""
    run = o.run
    length = run.length()
    if o.stopped_early or math.isinf(length):
        length = o.sent_s  # what it covered (a stopped or open-ended run)
    targets = o.target or ", ".join(sorted({c.target or "" for c in run}))
    report = Report.from_tally(
        o.tally,
        target=targets,
        requested_rps=run.requested_rps(length),
        duration_s=max(length, 0.0),
        send_duration_s=o.sent_s,
        ran_s=o.ran_s,
        elapsed_s=o.elapsed_s,
        planned=sum(o.planned.values()),
        profile=", ".join(dict.fromkeys(c.load.describe() for c in run if c.load is not None)),
        overtime=max(c.overtime for c in run),
        timeout_s=run.scenarios[0].timeout,
        stopped_early=o.stopped_early,
        gossip_dropped=o.gossip_dropped,
        notes=list(o.notes),
        workers=list(o.workers),
        agents=list(o.agents),
        epochs=list(o.epochs),
        bad_frames=o.bad_frames,
        generator=generator_info(),
    )
    report.scenarios = scenario_rows(o.tally, run, o.planned, report.duration_s, o.items)
    report.items = items_of(o.items)
    report.status = o.status
    return report


def finish_report(report: Report, run: Run, *, hosts: Iterable[str] = (), failed_during: bool = False) -> Report:
    """What every run's report has: the manifest, the generator's verdict (slots that only
    found no item are not the generator's), the thresholds' verdicts (a failure sets the exit
    status 99; ``failed_during``: one failed while the run went and stopped it)."""
    report.manifest = manifest(run.scenarios, hosts)
    report.generator_verdict = verdict(report)
    if run.settings.thresholds:
        judge(report, run.settings.thresholds, failed_during=failed_during)
    return report


def scenario_rows(
    tally: Tally, run: Run, planned: Mapping[str, int], length: float, items: Mapping[str, dict[str, Any]]
) -> list[ScenarioSummary]:
    """A row for each scenario (in the run's order) from its merged windows in ``tally``;
    ``length`` is the seconds the run's schedule ran (a scenario runs from its start to its
    own end or that)."""
    rows = []
    for c in run:
        assert c.load is not None
        w = tally.scenarios.get(c.name) or Window(-1, 0.0, tally.length)
        scheduled = w.started + w.canceled
        load = c.load
        span = max(min(load.length(), length) - load.begins, 0.0)
        requested = load.requested_until(load.begins + span) / span if span > 0 else 0.0
        rows.append(
            ScenarioSummary(
                name=c.name,
                model=load.kind,
                load=load.describe(),
                target=c.target or "",
                start_s=load.begins,
                requested_rps=requested,
                duration_s=span,
                counts=Counts(scheduled, w.succeeded, w.failed, w.canceled, planned.get(c.name, scheduled)),
                errors=dict(sorted(w.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
                latency=w.latency,
                service=w.service,
                items=items.get(c.name),
            )
        )
    return rows


#: counters of item summaries that add up across scenarios
_SUMMED = ("taken", "retries", "starved_slots", "reissued", "duplicates_dropped", "refused", "unprocessed",
           "malformed", "interrupted", "waiting_retries", "handler_errors")  # fmt: skip


def items_of(by_scenario: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The run's work items: the one feed's summary, or the sum of several (each also in its
    scenario's row)."""
    if not by_scenario:
        return None
    if len(by_scenario) == 1:
        return next(iter(by_scenario.values()))
    out: dict[str, Any] = {"feeds": {name: s.get("feed") for name, s in by_scenario.items()}}
    for key in _SUMMED:
        out[key] = sum(int(s.get(key, 0)) for s in by_scenario.values())
    for key in ("by_status", "attempts", "retries_by_reason"):
        merged: dict[str, int] = {}
        for s in by_scenario.values():
            for k, v in s.get(key, {}).items():
                merged[k] = merged.get(k, 0) + v
        out[key] = merged
    out["dry"] = all(s.get("dry", False) for s in by_scenario.values())
    out["notes"] = [f"{name}: {n}" for name, s in by_scenario.items() for n in s.get("notes", [])]
    return out


#: the packages whose versions a run's manifest names
KEY_PACKAGES = ("pyzmq", "msgpack", "hdrhistogram", "aiohttp", "numpy", "httptools", "uvloop", "click", "psutil",
                "redis")  # fmt: skip


@functools.cache
def versions() -> dict[str, Any]:
    """This process's Python, platform, pusher-farm and key dependency versions."""
    from importlib.metadata import PackageNotFoundError, version

    from pusher_farm._version import __version__

    deps = {}
    for name in KEY_PACKAGES:
        try:
            deps[name] = version(name)
        except PackageNotFoundError:
            continue
    return {"pusher_farm": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "dependencies": deps}  # fmt: skip


def manifest(configs: Sequence[Config], hosts: Iterable[str] = ()) -> dict[str, Any]:
    """What ran and where: pusher-farm, Python and key dependency versions of this process, its
    host and CPUs, the other ``hosts``, and the full plan (each scenario's settings)."""
    host = socket.gethostname()
    return {
        **versions(),
        "host": host,
        "cpus": os.cpu_count(),
        "hosts": sorted({host, *hosts}),
        "plan": [c.plain() for c in configs],
    }


def generator_info() -> dict[str, Any]:
    from pusher_farm.core.loop import loop_name

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "loop": loop_name(),
        "cpus": os.cpu_count(),
    }
