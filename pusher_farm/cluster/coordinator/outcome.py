"""What a farm run did, from the coordinator's state and the aggregator's merged windows: the
``Outcome`` the one report builder (``core.reporting``) turns into a report, with a typed
record per agent and per epoch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pusher_farm.cluster.coordinator.actions import Finish
from pusher_farm.cluster.coordinator.aggregator import Aggregator
from pusher_farm.cluster.coordinator.books import Share
from pusher_farm.cluster.coordinator.membership import AgentRecord, AgentState
from pusher_farm.cluster.coordinator.router import CoordinatorState
from pusher_farm.core.reporting import Outcome
from pusher_farm.core.results import AgentSummary, Counts

__all__ = ["farm_outcome"]


def farm_outcome(
    state: CoordinatorState,
    aggregator: Aggregator,
    finish: Finish,
    *,
    elapsed: float,
    dropped: int = 0,
    items: Mapping[str, dict[str, Any]] | None = None,
) -> Outcome:
    """What the run ``state`` coordinated did (``dropped``: frames the transport dropped before
    they were even messages; ``items``: each scenario's work items, by name)."""
    run = state.run
    agents = [a for a in state.agents.values() if a.state is not AgentState.SPARE]
    in_plan = [a for a in agents if a.shard is not None]
    shares = state.planner.shares(in_plan, aggregator.scheduled)
    summaries = [_summary(state, a, aggregator, shares.get(a.id)) for a in agents]
    done = [a.done for a in agents if a.done is not None]
    # a drain that did every item ended as it should: its stop was not a cut
    complete = {i for i, c in enumerate(run) if c.load is not None and c.load.needs_items and i in state.dealing.dry_s}
    stopped_early = state.planner.cut or any(
        s.stopped_early for d in done for i, s in enumerate(d.scenarios) if i not in complete
    )
    sent = max((d.sent_s for d in done), default=0.0)
    if not sent and (state.planner.cut or math.isinf(run.length())):
        sent = min(state.planner.stops.values(), default=0.0)  # aborted before any done: the stop
    notes = [finish.reason] if not finish.ok and finish.reason else []
    notes += state.intake.rejected
    notes += [f"{a.label()}: {a.done.error}" for a in agents if a.done is not None and a.done.error]
    notes += [f"coordinator listener failed: {e}" for e in aggregator.listener_errors]
    items = dict(items or {})
    for i, c in enumerate(run):  # slots that found no item, as the agents counted them
        if c.name in items:
            items[c.name]["starved_slots"] = sum(d.scenarios[i].starved for d in done if i < len(d.scenarios))
    return Outcome(
        run=run,
        tally=aggregator.tally,
        planned=state.planner.scenario_planned(in_plan, aggregator.scheduled),
        elapsed_s=elapsed,
        sent_s=sent,
        ran_s=max((d.ran_s for d in done), default=0.0),
        stopped_early=stopped_early,
        gossip_dropped=sum(d.gossip_dropped for d in done),
        notes=notes,
        agents=summaries,
        epochs=state.planner.summaries(),
        bad_frames=state.bad_frames + dropped,
        status=finish.status,
        items=items,
    )


def _summary(state: CoordinatorState, a: AgentRecord, aggregator: Aggregator, share: Share | None) -> AgentSummary:
    c = aggregator.counts(a.id)
    planned = share.planned if share is not None else c.scheduled
    counts = Counts(c.scheduled, c.succeeded, c.failed, c.canceled, planned)
    start_at = state.start_at
    cpu = a.done.cpu if a.done is not None and a.done.cpu is not None else a.cpu
    unfired = counts.unfired > 0 and share is not None
    return AgentSummary(
        id=a.id,
        name=a.name,
        host=a.host,
        pid=a.hello.pid,
        package=a.hello.package,
        capacity=a.capacity,
        share=a.share,
        state=a.state.value,
        counts=counts,
        clock_offset_ms=a.offset * 1000,
        rtt_ms=None if math.isnan(a.rtt) else a.rtt * 1000,
        lost_at_s=None if a.lost_at is None or start_at is None else a.lost_at - start_at,
        error=a.error or (a.done.error if a.done is not None else None) or None,
        unfired_from_s=share.from_s if unfired else None,  # type: ignore[union-attr]
        unfired_to_s=share.to_s if unfired else None,  # type: ignore[union-attr]
        cpu_percent=cpu,
        stopped_early=a.stopped_early,
        gossip_dropped=a.done.gossip_dropped if a.done is not None else 0,
        rejected_windows=a.rejected,
        cpus=a.hello.cpus,
        python=a.hello.python,
        dependencies=dict(a.hello.deps),
        scenarios={sc: n for (agent, sc), n in aggregator.scheduled.items() if agent == a.id},
    )
