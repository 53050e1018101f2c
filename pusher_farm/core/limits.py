"""Did the generator measure the target, or itself? A machine-readable verdict.

A run is *generator-limited* when its own machinery, not the target, set the pace: schedule
lag p99 above ``LAG_P99_MS`` (calls started late: the event loop or the CPU could not keep
up), slots canceled because every allowed call was in flight (``--overtime`` too small for
the target's latency at this rate) beyond ``CANCEL_SHARE`` of the slots, or an agent process
busy near a whole core (``CPU_BUSY``). Slots that only found no work item are not counted
against the generator. The verdict is per agent (CPU, its cancels) and overall.

``LimitWatch`` checks each merged window for ``--abort-when-generator-limited``: two windows
in a row over the lag or cancel limits (the first window, the start, is not judged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CANCEL_SHARE", "CPU_BUSY", "LAG_P99_MS", "LimitWatch", "verdict"]

LAG_P99_MS = 10.0
CANCEL_SHARE = 0.001
CPU_BUSY = 90.0


def verdict(report: Any) -> dict[str, Any]:
    """{"limited": bool, "reasons": [...], "agents": [{"agent", "limited", "reasons"}]}."""
    reasons = []
    lag = report.lag.percentile(99) / 1000 if report.lag.total else 0.0
    if lag > LAG_P99_MS:
        reasons.append(f"schedule lag p99 {lag:.1f} ms (over {LAG_P99_MS:g} ms: calls started late)")
    c = report.counts
    starved = int((report.items or {}).get("starved_slots", 0))
    canceled = c.canceled - starved
    if c.scheduled and canceled / c.scheduled > CANCEL_SHARE:
        reasons.append(f"{canceled} of {c.scheduled} slots canceled: {report.overtime} calls in flight per process "
                       "were all busy")  # fmt: skip
    agents = []
    for a in report.agents:
        mine = []
        if a.cpu_percent is not None and a.cpu_percent >= CPU_BUSY:
            mine.append(f"CPU {a.cpu_percent:.0f}% of a core")
        ac = a.counts
        if not starved and ac.scheduled and ac.canceled / ac.scheduled > CANCEL_SHARE:
            mine.append(f"{ac.canceled} of {ac.scheduled} slots canceled")
        agents.append({"agent": a.name, "limited": bool(mine), "reasons": mine})
    limited = bool(reasons) or any(a["limited"] for a in agents)
    reasons += [f"{a['agent']}: {r}" for a in agents for r in a["reasons"] if not r.endswith("canceled")]
    return {"limited": limited, "reasons": reasons, "agents": agents}


class LimitWatch:
    """Calls ``on_limited(reason)`` once two merged windows in a row show the generator as the
    limit (see the module docstring)."""

    def __init__(self, on_limited: Callable[[str], None]) -> None:
        self.on_limited = on_limited
        self.strikes = 0
        self.fired = False

    def add(self, window: Any) -> None:
        if self.fired or window.index < 1:
            return
        lag = window.lag.percentile(99) / 1000 if window.lag.total else 0.0
        slots = window.started + window.canceled
        reason = ""
        if lag > LAG_P99_MS:
            reason = f"schedule lag p99 {lag:.1f} ms in window {window.index}"
        elif slots and window.canceled / slots > 10 * CANCEL_SHARE:
            reason = f"{window.canceled} of {slots} slots canceled in window {window.index}"
        self.strikes = self.strikes + 1 if reason else 0
        if self.strikes >= 2:
            self.fired = True
            self.on_limited(reason)
