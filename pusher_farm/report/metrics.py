"""The Prometheus exposition of a farm's state (``prometheus_client``'s own text format).

From a snapshot (``cluster.control.snapshot``): calls by outcome and errors by kind (counters),
calls in flight, requested and achieved rate, agents by state (gauges), and latency as a
Prometheus histogram whose buckets are counted from the merged HdrHistogram.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest

__all__ = ["render_metrics"]


class _Snapshot:
    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Any]:
        s = self.snap
        t = s["totals"]
        calls = CounterMetricFamily("pusher_farm_calls", "Slots by outcome, the whole farm", labels=["outcome"])
        for outcome in ("succeeded", "failed", "canceled"):
            calls.add_metric([outcome], t[outcome])
        yield calls
        errors = CounterMetricFamily("pusher_farm_errors", "Failed calls by error kind", labels=["kind"])
        for kind, n in s["errors"].items():
            errors.add_metric([kind], n)
        yield errors
        yield GaugeMetricFamily("pusher_farm_in_flight", "Calls started and not yet ended", value=t["in_flight"])
        yield GaugeMetricFamily("pusher_farm_requested_rps", "The farm's requested rate", value=s["requested_rps"])
        yield GaugeMetricFamily("pusher_farm_achieved_rps", "Calls started per second, last window",
                                value=s["achieved_rps"])  # fmt: skip
        agents = GaugeMetricFamily("pusher_farm_agents", "Agents by state", labels=["state"])
        for state, n in s["agent_states"].items():
            agents.add_metric([state], n)
        yield agents
        buckets = [(f"{b:g}", n) for b, n in zip(s["latency_bounds_s"], s["latency_buckets"], strict=True)]
        buckets.append(("+Inf", s["latency_count"]))
        yield HistogramMetricFamily(
            "pusher_farm_latency_seconds", "Latency from the intended start (coordinated omission corrected)",
            buckets=buckets, sum_value=s["latency_sum_s"],
        )  # fmt: skip


def render_metrics(snap: dict[str, Any]) -> bytes:
    """The snapshot in Prometheus's text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snap))
    return generate_latest(registry)
