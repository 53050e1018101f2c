"""What a reader of a report must not miss, in words: the generator as the limit, canceled and
unfired slots, lost agents, dropped gossips, rejected windows.
"""

from __future__ import annotations

from pusher_farm.core.report import Report

__all__ = ["LAG_WARNING_MS", "warnings"]

#: schedule lag p99 above this means the generator, not the target, was the limit
LAG_WARNING_MS = 10.0


def warnings(report: Report) -> list[str]:
    """One line per thing that went wrong or that limits what the numbers mean."""
    out = list(report.notes)
    c = report.counts
    lag_p99 = report.lag.percentile(99) / 1000
    if lag_p99 > LAG_WARNING_MS:
        out.append(
            f"schedule lag p99 is {lag_p99:.1f} ms: the generator itself fell behind, so the "
            "rate was limited by this machine, not by the target (add processes or hosts)"
        )
    if c.canceled:
        out.append(
            f"{c.canceled} slots were canceled because {report.overtime} calls were already in flight "
            "in a process (raise --overtime, or the target is slower than the rate allows)"
        )
    if c.unfired > 0:
        where = [
            f"{a.name}: {a.counts.unfired} from {a.unfired_from_s:.2f}s to {a.unfired_to_s:.2f}s"
            for a in report.agents
            if a.counts.unfired > 0 and a.unfired_from_s is not None and a.unfired_to_s is not None
        ]
        out.append(
            f"{c.unfired} of {c.planned} planned slots were never fired"
            + (f" (their agents' shares: {'; '.join(where)})" if where else "")
            + ": no agent reached them, so they are in no latency"
        )
    for a in report.agents:
        if a.counts.unfired < 0:
            out.append(
                f"agent {a.name} fired {-a.counts.unfired} slots beyond its share of the plan (it heard a new plan "
                "after the plan's first slot): those slots may have been fired twice, and others by nobody"
            )
    if report.gossip_dropped:
        out.append(f"{report.gossip_dropped} gossips could not be delivered to a slow listener")
    if report.latency.clamped:
        out.append(f"{report.latency.clamped} latencies above one hour were recorded as one hour")
    for a in report.agents:
        if a.lost:
            at = "" if a.lost_at_s is None else f" at {a.lost_at_s:.2f}s"
            out.append(f"agent {a.name} (host {a.host}) was lost{at}: what it reported is counted")
        if a.rejected_windows:
            out.append(f"agent {a.name} sent {a.rejected_windows} windows that were not valid: they are not counted")
    if report.bad_frames:
        out.append(f"{report.bad_frames} bad frames were dropped by the coordinator")
    if not c.balanced or any(not a.counts.balanced for a in report.agents):
        out.append("counts do not add up: planned != scheduled + unfired or scheduled != succeeded + failed + canceled")
    return out
