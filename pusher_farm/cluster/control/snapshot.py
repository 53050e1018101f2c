"""What the HTTP side shows, as plain data: a coordinator's snapshot (taken on its thread, every
quarter second, and published whole, so the server never reads the state machine while it
changes) and an agent's own metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pusher_farm.core.window import Window

if TYPE_CHECKING:
    from pusher_farm.cluster.control.server import ControlServer
    from pusher_farm.cluster.coordinator.coordinator import Coordinator

__all__ = ["LATENCY_BOUNDS_S", "AgentMetrics", "snapshot", "totals_snapshot"]

#: the latency buckets a snapshot counts (seconds), for a Prometheus histogram
LATENCY_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def totals_snapshot(
    total: Any, achieved_rps: float, requested_rps: float, agent_states: dict[str, int]
) -> dict[str, Any]:
    """The part of a snapshot that ``/metrics`` renders, from a window of totals."""
    latency = total.latency
    return {
        "requested_rps": requested_rps,
        "totals": _counts(total),
        "errors": dict(total.errors),
        "achieved_rps": achieved_rps,
        "latency_ms": latency.summary_ms() if latency.total else {},
        "agent_states": agent_states,
        "latency_bounds_s": list(LATENCY_BOUNDS_S),
        "latency_buckets": latency.cumulative([int(b * 1e6) for b in LATENCY_BOUNDS_S]),
        "latency_count": latency.total,
        "latency_sum_s": latency.sum / 1e6,
    }


def _counts(w: Any) -> dict[str, int]:
    return {
        "scheduled": w.started + w.canceled,
        "started": w.started,
        "succeeded": w.succeeded,
        "failed": w.failed,
        "canceled": w.canceled,
        "in_flight": max(0, w.started - w.succeeded - w.failed),
    }


def snapshot(coord: Coordinator) -> dict[str, Any]:
    """What the server shows, as plain data (taken on the coordinator's thread): the run, its
    agents and every scenario with its model and its numbers now."""
    state = coord.state
    tally = coord.aggregator.tally
    agents = []
    states: dict[str, int] = {}
    for a in state.agents.values():
        states[a.state.value] = states.get(a.state.value, 0) + 1
        agents.append({
            "id": a.id, "name": a.name, "host": a.host, "state": a.state.value, "share": round(a.share, 6),
            "cpu_percent": a.cpu, "rtt_ms": None if a.rtt != a.rtt else round(a.rtt * 1000, 3),
            "clock_offset_ms": round(a.offset * 1000, 3),
        })  # fmt: skip
    run = coord.run
    elapsed = 0.0 if state.start_at is None else max(0.0, time.monotonic() - state.start_at)
    achieved = coord.control.last_started / tally.length if coord.control is not None else 0.0
    totals = tally.scenarios
    scenarios = []
    for i, c in enumerate(run):
        load = c.load
        assert load is not None
        row: dict[str, Any] = {
            "name": c.name, "model": load.kind, "load": load.describe(), "target": c.target,
            "overtime": c.overtime, "requested_rps": load.rate_at(elapsed), "stopped": i in state.planner.stops,
            **_counts(totals.get(c.name) or Window(-1, 0.0, tally.length)),
        }  # fmt: skip
        for knob in load.knobs:
            if knob != "rps":  # users, parallel: how many the whole farm runs now
                row[knob] = load.members_at(elapsed)
        scenarios.append(row)
    return {
        "run": state.run_id,
        "state": state.phase.value,
        "target": ", ".join(dict.fromkeys(c.target or "" for c in run)),
        "overtime": max(c.overtime for c in run),
        "elapsed_s": elapsed,
        "scenarios": scenarios,
        "agents": agents,
        **totals_snapshot(tally.total, achieved, run.rate_at(elapsed), states),
    }


class AgentMetrics:
    """An agent's own ``/metrics`` (``farm agent --metrics HOST:PORT``): the windows its runs
    closed, summed, published to a ``ControlServer`` after each (on the executor's thread),
    with its share of the requested rate as its plan stands (every epoch and change)."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.total = Window(index=-1, start=0.0, length=1.0)
        #: each scenario's latest window: its started calls and requested rate (this agent's share)
        self._latest: dict[str, tuple[int, float, float]] = {}

    def on_window(self, window: Any, requested_rps: float) -> None:
        """A window one of its scenarios closed, with that scenario's requested rate (its share)."""
        self.total.merge(window)
        self._latest[window.scenario] = (window.started, window.length, requested_rps)
        achieved = sum(n / length for n, length, _ in self._latest.values() if length)
        requested = sum(r for _, _, r in self._latest.values())
        self.server.published = totals_snapshot(self.total, achieved, requested, {"running": 1})
