"""What a reader of a report must not miss, in words: the generator as the limit, canceled and
unfired slots, lost agents, dropped gossips, rejected windows.
"""

from __future__ import annotations

from pusher_farm.core.results import Report
from pusher_farm.core.window import OTHER_NAMES

__all__ = ["CHURN_SHARE", "LAG_WARNING_MS", "warnings"]

#: schedule lag p99 above this means the generator, not the target, was the limit
LAG_WARNING_MS = 10.0
#: calls that opened a connection, or time spent opening or waiting for one, above this share
#: means the run measured connection churn more than the target's answers
CHURN_SHARE = 0.05


def _connection_churn(report: Report) -> str:
    """A warning when opening connections (or waiting for one) weighs on the run, else ''."""
    connect = report.phases.get("connect")
    calls = report.counts.succeeded + report.counts.failed
    if connect is None or not connect.total or not calls:
        return ""
    opening = sum(report.phases[p].sum for p in ("wait", "connect", "tls") if p in report.phases)
    share_time = opening / report.latency.sum if report.latency.sum else 0.0
    share_calls = connect.total / calls
    if share_calls <= CHURN_SHARE and share_time <= CHURN_SHARE:
        return ""
    tls = report.phases.get("tls")
    handshake = f", TLS handshake p50 {tls.percentile(50) / 1000:.1f} ms" if tls is not None and tls.total else ""
    return (
        f"{connect.total} of {calls} calls opened a connection first (connect p50 "
        f"{connect.percentile(50) / 1000:.1f} ms{handshake}), and {share_time:.0%} of all latency was opening "
        "connections or waiting for one: this measured connection churn more than the target's answers "
        "(does the server close connections? --warm N opens them before the run)"
    )


def warnings(report: Report) -> list[str]:
    """One line per thing that went wrong or that limits what the numbers mean."""
    out = list(report.notes)
    c = report.counts
    churn = _connection_churn(report)
    lag_p99 = report.lag.percentile(99) / 1000
    if lag_p99 > LAG_WARNING_MS:
        cure = (
            "here it was opening connections: more processes or hosts would open more of them, reuse or warm them"
            if churn
            else "add processes or hosts"
        )
        out.append(
            f"schedule lag p99 is {lag_p99:.1f} ms: the generator itself fell behind, so the "
            f"rate was limited by this machine, not by the target ({cure})"
        )
    if churn:
        out.append(churn)
    for t in report.thresholds:
        if not t["ok"]:
            value = "could not be measured" if t["value"] is None else f"measured {t['value']:g} {t['unit']}".rstrip()
            out.append(f"threshold {t['threshold']} failed: {value}")
    other = next((n for n in report.names if n.name == OTHER_NAMES), None)
    if other is not None and len(report.names) > 1:
        out.append(
            f"{other.calls} calls are counted under '{OTHER_NAMES}': the run saw more distinct call names than it "
            "keeps (max_names, 1,000 by default): name calls by template (as the http target does: "
            "'GET /users/{id}'), or raise max_names"
        )
    starved = int((report.items or {}).get("starved_slots", 0))
    if starved:
        out.append(
            f"{starved} slots found no work item and were canceled (the feed had run dry, or items had not "
            "reached the agent yet)"
        )
    if c.canceled > starved:
        out.append(
            f"{c.canceled - starved} slots were canceled because {report.overtime} calls were already in flight "
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
