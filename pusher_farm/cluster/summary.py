"""A farm run's report, from the coordinator's state and the aggregator's merged windows."""

from __future__ import annotations

import math

from pusher_farm.cluster.actions import Finish
from pusher_farm.cluster.aggregator import Aggregator
from pusher_farm.cluster.epochs import Share
from pusher_farm.cluster.members import AgentRecord, AgentState
from pusher_farm.cluster.state import CoordinatorState
from pusher_farm.core.report import AgentSummary, Counts, EpochSummary, Report, scenario_rows
from pusher_farm.core.worker import describe_run

__all__ = ["build_report"]


def build_report(
    state: CoordinatorState, aggregator: Aggregator, finish: Finish, *, elapsed: float, dropped: int = 0
) -> Report:
    """The report of the run ``state`` coordinated (``dropped``: frames the transport dropped
    before they were even messages)."""
    spec = state.spec
    agents = [a for a in state.agents.values() if a.state is not AgentState.SPARE]
    counts = {a.id: aggregator.counts(a.id) for a in agents}
    shares = state.accounting({i: c.scheduled for i, c in counts.items()}, aggregator.scheduled)
    summaries = []
    planned = 0
    for a in agents:
        c = counts[a.id]
        share = shares.get(a.id)
        agent_planned = share.planned if share is not None else c.scheduled
        planned += agent_planned
        summaries.append(
            _summary(
                state,
                a,
                Counts(c.scheduled, c.succeeded, c.failed, c.canceled, agent_planned),
                share,
                {sc: n for (agent, sc), n in aggregator.scheduled.items() if agent == a.id} if spec.scenarios else {},
            )
        )
    length = spec.length() if spec.sharded else max(c.length() for c in spec.configs)
    requested = sum(c.profile.average_rate(length) for c in spec.configs if c.profile is not None)
    sent = max((float(a.stats.get("sent_s", 0.0)) for a in agents), default=0.0)
    ran = max((float(a.stats.get("ran_s", 0.0)) for a in agents), default=0.0)
    # a drain that did every item ended as it should: its stop was not a cut
    done = spec.drain and state.dry_s is not None
    stopped = not done and (state.cut or any(a.stopped_early for a in agents))
    if stopped or math.isinf(length):
        # What the agents said they sent; failing that (aborted before their done), the time
        # from the start to the stop.
        length = sent or (state.stop_s or 0.0)
    targets = sorted({c.target or "" for c in spec.configs})
    notes = [finish.reason] if not finish.ok and finish.reason else []
    notes += state.rejected
    notes += [f"{a.label()}: {a.stats['error']}" for a in agents if a.stats.get("error")]
    notes += [f"coordinator listener failed: {e}" for e in aggregator.listener_errors]
    book = state.book
    epochs = [] if book is None else [EpochSummary(e.from_slot, e.at_s, e.names, e.reason) for e in book.epochs[1:]]
    epochs += [EpochSummary(first, at, names, reason) for first, at, names, reason in state.epoch_log]
    report = Report.from_tally(
        aggregator.tally,
        target=", ".join(targets),
        requested_rps=requested,
        duration_s=length,
        elapsed_s=elapsed,
        send_duration_s=sent,
        ran_s=ran,
        planned=planned,
        profile=", ".join(dict.fromkeys(describe_run(c) for c in spec.configs)),
        overtime=max(c.overtime for c in spec.configs),
        timeout_s=spec.policy.timeout,
        stopped_early=stopped,
        gossip_dropped=sum(int(a.stats.get("gossip_dropped", 0)) for a in agents),
        agents=summaries,
        epochs=epochs,
        notes=notes,
        bad_frames=state.bad_frames + dropped,
    )
    if spec.sharded:
        ends = state.scenario_ends()
        planned_by = {
            c.name: ends[c.name] if ends[c.name] is not None else _scheduled(aggregator, c.name) for c in spec.configs
        }
        report.scenarios = scenario_rows(aggregator.tally, spec.configs, planned_by, length)
    report.status = finish.status
    return report


def _scheduled(aggregator: Aggregator, scenario: str) -> int:
    return sum(n for (_, name), n in aggregator.scheduled.items() if name == scenario)


def _summary(
    state: CoordinatorState, a: AgentRecord, counts: Counts, share: Share | None, scenarios: dict[str, int]
) -> AgentSummary:
    start_at = state.start_at
    cpu = a.stats.get("cpu")
    return AgentSummary(
        id=a.id,
        name=a.name,
        host=a.host,
        pid=a.pid,
        package=a.package,
        capacity=a.capacity,
        share=a.share,
        state=a.state.value,
        counts=counts,
        clock_offset_ms=a.offset * 1000,
        rtt_ms=None if math.isnan(a.rtt) else a.rtt * 1000,
        lost_at_s=None if a.lost_at is None or start_at is None else a.lost_at - start_at,
        error=a.error or a.stats.get("error") or None,
        unfired_from_s=share.from_s if share is not None and counts.unfired > 0 else None,
        unfired_to_s=share.to_s if share is not None and counts.unfired > 0 else None,
        cpu_percent=None if cpu is None else float(cpu),
        stopped_early=a.stopped_early,
        gossip_dropped=int(a.stats.get("gossip_dropped", 0)),
        rejected_windows=a.rejected,
        cpus=a.cpus,
        python=a.python,
        dependencies=dict(a.deps),
        scenarios=scenarios,
    )
