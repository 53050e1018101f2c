"""The JSON contract of a report, schema ``pusher-farm/report/v1``.

Benchmark rigs parse it and gate CI on it, so fields are only ever added, never renamed or
removed.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any

from pusher_farm.core.histogram_codec import to_hdr
from pusher_farm.core.results import AgentSummary, NameSummary, Report, ScenarioSummary
from pusher_farm.core.stats import Histogram
from pusher_farm.report.advice import warnings

__all__ = ["PHASE_ORDER", "SCHEMA", "to_dict"]

SCHEMA = "pusher-farm/report/v1"


def to_dict(report: Report) -> dict[str, Any]:
    """``report`` as the JSON contract (plain data, ready for ``json.dumps``)."""
    return {
        "schema": SCHEMA,
        "target": report.target,
        "profile": report.profile,
        "requested_rps": round(report.requested_rps, 6),
        "duration_s": round(report.duration_s, 6),
        "send_duration_s": round(report.send_duration_s, 6),
        "ran_s": round(report.ran_s, 6),
        "elapsed_s": round(report.elapsed_s, 6),
        "achieved_rps": round(report.achieved_rps, 3),
        "throughput_rps": round(report.throughput_rps, 3),
        "overtime": report.overtime,
        "timeout_s": report.timeout_s,
        "stopped_early": report.stopped_early,
        "status": report.status,
        "counts": report.counts.as_dict(),
        "errors": dict(report.errors),
        "latency_ms": report.latency.summary_ms(),
        "service_time_ms": report.service.summary_ms(),
        "schedule_lag_ms": report.lag.summary_ms(),
        # each phase over the calls where it happened: {"connect": {"calls": n, "p50": ...}}
        "phases_ms": {name: {"calls": h.total, **h.summary_ms()} for name, h in _phases(report)},
        "target_counters": dict(report.target_counters),
        # work items (a run with a feed; null otherwise): by_status, attempts, retries, ...
        "items": report.items,
        # each threshold: {"threshold", "metric", "value", "limit", "unit", "ok"}
        "thresholds": list(report.thresholds),
        # {"limited": bool, "reasons": [...], "agents": [{"agent", "limited", "reasons"}]}
        "generator_verdict": dict(report.generator_verdict),
        # versions here and on every agent, the protocol, the plan, hosts, the command line
        "manifest": dict(report.manifest),
        # one row per scenario (name, model open|closed|drain, load, counts, errors, latency,
        # service time) and per call name; merged exactly across agents. A closed model's
        # latency is its service time (a closed loop cannot see coordinated omission).
        "scenarios": [_scenario(s) for s in report.scenarios],
        "names": [_name(n) for n in report.names],
        "series": report.series,
        "gossip_dropped": report.gossip_dropped,
        "workers": [
            {**asdict(w), "counts": w.counts.as_dict(), "achieved_rps": round(w.achieved_rps, 3)}
            for w in report.workers
        ],
        "agents": [_agent(a) for a in report.agents],
        "epochs": [
            {"from_slot": e.from_slot, "at_s": round(e.at_s, 3), "agents": list(e.agents), "reason": e.reason}
            for e in report.epochs
        ],
        "missed_slots": sum(a.counts.unfired for a in report.agents if a.lost),
        "bad_frames": report.bad_frames,
        "warnings": warnings(report),
        "generator": report.generator,
        "histograms": {
            "format": "HdrHistogram V2, zlib, base64; microseconds",
            "latency": _encode(report.latency),
            "service_time": _encode(report.service),
            "schedule_lag": _encode(report.lag),
            "phases": {name: _encode(h) for name, h in _phases(report)},
        },
    }


def _scenario(s: ScenarioSummary) -> dict[str, Any]:
    return {
        "name": s.name,
        "model": s.model,
        "load": s.load,
        "target": s.target,
        "start_s": round(s.start_s, 6),
        "duration_s": round(s.duration_s, 6),
        "requested_rps": round(s.requested_rps, 6),
        "achieved_rps": round(s.achieved_rps, 3),
        "throughput_rps": round(s.throughput_rps, 3),
        "counts": s.counts.as_dict(),
        "errors": dict(s.errors),
        "latency_ms": s.latency.summary_ms(),
        "service_time_ms": s.service.summary_ms(),
        "latency_is_service_time": s.latency_is_service_time,
        # a scenario with a feed of its own: its items (as the run's "items" has them)
        "items": s.items,
    }


def _name(n: NameSummary) -> dict[str, Any]:
    return {
        "name": n.name,
        "calls": n.calls,
        "succeeded": n.succeeded,
        "failed": n.failed,
        "errors": dict(n.errors),
        "latency_ms": n.latency.summary_ms(),
        "service_time_ms": n.service.summary_ms(),
    }


def _agent(a: AgentSummary) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "host": a.host,
        "pid": a.pid,
        "package": a.package,
        "capacity": a.capacity,
        "share": round(a.share, 6),
        "state": a.state,
        "counts": a.counts.as_dict(),
        "clock_offset_ms": round(a.clock_offset_ms, 3),
        "rtt_ms": None if a.rtt_ms is None else round(a.rtt_ms, 3),
        "cpus": a.cpus,
        "python": a.python,
        "dependencies": dict(a.dependencies),
        "lost": a.lost,
        "lost_at_s": None if a.lost_at_s is None else round(a.lost_at_s, 3),
        "error": a.error,
        # kept from before unfired: the slots of a lost agent that no report covers
        "missed_slots": a.counts.unfired if a.lost else 0,
        "unfired_from_s": None if a.unfired_from_s is None else round(a.unfired_from_s, 3),
        "unfired_to_s": None if a.unfired_to_s is None else round(a.unfired_to_s, 3),
        "cpu_percent": a.cpu_percent,
        "stopped_early": a.stopped_early,
        "gossip_dropped": a.gossip_dropped,
        "rejected_windows": a.rejected_windows,
        # a run of scenarios: the slots it scheduled in each
        "scenarios": dict(a.scenarios),
    }


#: the order phases are shown in (any other after them, by name)
PHASE_ORDER = ("wait", "connect", "tls", "ttfb", "receive")


def _phases(report: Report) -> list[tuple[str, Histogram]]:
    order = {name: i for i, name in enumerate(PHASE_ORDER)}
    return sorted(report.phases.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _encode(h: Histogram) -> str:
    raw = to_hdr(h).encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else base64.b64encode(raw).decode("ascii")
