"""The coordinator's plan for runs of scenarios (or of users): epochs across every scenario.

Part of ``CoordinatorState`` (see ``state``). A run of scenarios deals each open scenario's
global slots among the agents by one set of weights, and the closed model's users the same way
(user ``j`` on the agent that owns slot ``j``). A lost agent's share moves, and a late agent
gets one, from a new epoch at one instant ``at_s`` announced ahead: each open scenario keeps a
``PlanBook`` and starts its new epoch at its first slot due then; closed-model users change
hands at that instant. Where every slot went is then counted scenario by scenario:
``planned == scheduled + unfired`` for each scenario, each agent and the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pusher_farm.cluster.actions import Action, Log, Send
from pusher_farm.cluster.epochs import PlanBook, Share, planned_end
from pusher_farm.cluster.members import AgentRecord, AgentState
from pusher_farm.core.schedule import Shard

if TYPE_CHECKING:
    from pusher_farm.cluster.state import CoordinatorState

__all__ = ["ScenarioPlanMixin"]


def _reach(agent: AgentRecord, index: int) -> int | None:
    """How far ``agent`` got in scenario ``index`` (its done message's reaches)."""
    reaches = agent.stats.get("reaches")
    if isinstance(reaches, list) and index < len(reaches):
        return int(reaches[index])
    return int(agent.stats["reach"]) if index == 0 and "reach" in agent.stats else None


class ScenarioPlanMixin:
    #: each open scenario's epochs (a run of scenarios or users; empty otherwise)
    books: dict[str, PlanBook]
    #: the instants (seconds from the start) of this run's epochs after the first, and for the
    #: report each one's (first slot of the first open scenario, instant, agents, reason)
    epoch_times: list[float]
    epoch_log: list[tuple[int, float, tuple[str, ...], str]]

    def init_scenario_plan(self: CoordinatorState) -> None:
        self.books = {}
        self.epoch_times = []
        self.epoch_log = []
        spec = self.spec
        if not spec.sharded or spec.one_rate or spec.drain:
            return
        for c in spec.configs:
            if c.users is None and c.profile is not None:
                self.books[c.name] = PlanBook(c.profile)

    @property
    def shares_users(self: CoordinatorState) -> bool:
        """A run of scenarios or users: its epochs go through this mixin."""
        return self.spec.sharded and not self.spec.one_rate and not self.spec.drain

    def open_scenarios(self: CoordinatorState, used: list[AgentRecord]) -> list[Shard]:
        """The first epoch: every scenario's slots (and users) among ``used`` by capacity."""
        agents = [(a.id, a.name, a.capacity) for a in used]
        for book in self.books.values():
            book.open(agents, from_slot=0, at_s=0.0, reason="start")
        weights = tuple(a.capacity for a in used)
        return [Shard(i, weights) for i in range(len(used))]

    def _scenario_epoch_at(self: CoordinatorState, live: list[AgentRecord], now: float) -> float | None:
        """Seconds from the start of a new epoch announced now (None: the run ends first)."""
        assert self.start_at is not None
        rtts = [a.rtt for a in live if not math.isnan(a.rtt)]
        at = now + self.timing.start_lead + 2 * max(rtts, default=0.0) - self.start_at
        at = max(at, *self.epoch_times) if self.epoch_times else at
        return None if at >= self.spec.length() else at

    def _from_slots(self: CoordinatorState, at: float) -> list[int | None]:
        """Each scenario's first slot due at ``at`` (None: a closed model)."""
        out: list[int | None] = []
        for c in self.spec.configs:
            book = self.books.get(c.name)
            out.append(None if book is None else max(book.profile.first_slot_at(at), book.epochs[-1].from_slot))
        return out

    def reshard_scenarios(
        self: CoordinatorState, live: list[AgentRecord], at: float, reason: str, *, joining: AgentRecord | None = None
    ) -> list[Action]:
        """Deal every scenario from ``at`` on among ``live`` by capacity: an ``epoch`` to each
        running agent, a ``start`` to one that joins now."""
        firsts = self._from_slots(at)
        agents = [(a.id, a.name, a.capacity) for a in live]
        for c, first in zip(self.spec.configs, firsts, strict=True):
            if first is not None:
                self.books[c.name].open(agents, from_slot=first, at_s=at, reason=reason)
        self.epoch_times.append(at)
        first_open = next((f for f in firsts if f is not None), 0)
        self.epoch_log.append((first_open, at, tuple(a.name for a in live), reason))
        weights = tuple(a.capacity for a in live)
        actions: list[Action] = []
        for i, agent in enumerate(live):
            agent.shard = Shard(i, weights)
            if agent is joining:
                actions.append(self._start_message(agent, first=0, firsts=firsts, from_s=at))
                continue
            agent.share = agent.shard.share
            agent.last_sent = self._now
            fields = {
                "run": self.run_id,
                "from_slot": first_open,
                "weights": list(weights),
                "index": i,
                "at_s": at,
                "from_slots": [-1 if f is None else f for f in firsts],
            }
            actions.append(Send(agent.id, "epoch", fields))
        actions.append(Log("warning", f"{reason}: {len(live)} agents share every scenario from t={at:.2f}s"))
        return actions

    def rebalance_scenarios(self: CoordinatorState, lost: AgentRecord, now: float) -> list[Action]:
        """Move the lost agent's share of every scenario to the running agents."""
        live = [a for a in self._used() if a.state is AgentState.RUNNING]
        at = self._scenario_epoch_at(live, now)
        if not live or at is None:
            return [Log("warning", f"{lost.label()} left near the end: nothing left to rebalance")]
        lost.share = 0.0
        lost.share_ends_s = at
        return self.reshard_scenarios(live, at, f"{lost.name} {'lost' if lost.state is AgentState.LOST else 'stopped'}")

    def join_scenarios(self: CoordinatorState, agent: AgentRecord, now: float) -> list[Action]:
        running = [a for a in self._used() if a.state is AgentState.RUNNING]
        at = self._scenario_epoch_at([*running, agent], now)
        if at is None:
            agent.state = AgentState.SPARE
            return [Log("info", f"{agent.label()} joined too late to take a share")]
        agent.state = AgentState.RUNNING
        return self.reshard_scenarios([*running, agent], at, f"{agent.name} joined", joining=agent)

    # -- where every slot went ----------------------------------------------------------------

    def scenario_ends(self: CoordinatorState) -> dict[str, int | None]:
        """Each open scenario's planned end: the slot below which its slots were all planned;
        None for a closed model (it planned the calls it started)."""
        used = [a for a in self._used() if a.index >= 0 and a.shard is not None]
        ends: dict[str, int | None] = {}
        for i, c in enumerate(self.spec.configs):
            if c.profile is None or c.parallel or c.users is not None:
                ends[c.name] = None
                continue
            reaches = [r for r in (_reach(a, i) for a in used) if r is not None]
            ends[c.name] = planned_end(c.profile, c.length(), cut=self.cut, reaches=reaches, stop_s=self.stop_s)
        return ends

    def scenario_accounting(
        self: CoordinatorState, used: list[AgentRecord], by_scenario: Mapping[tuple[str, str], int]
    ) -> dict[str, Share]:
        """Each agent's share of every scenario's planned slots (its epochs' shards up to the
        scenario's planned end; a closed model planned what it started), summed per agent."""
        ends = self.scenario_ends()
        length = self.spec.length()
        shares: dict[str, Share] = {}
        for a in used:
            planned = scheduled = 0
            gaps: list[tuple[float | None, float | None]] = []
            reported = float(a.stats.get("stopped_s", a.reported_until_s))
            end_s = self._end_s(length, [a] if "reach" in a.stats else [])
            for c in self.spec.configs:
                mine = by_scenario.get((a.id, c.name), 0)
                scheduled += mine
                end, book = ends[c.name], self.books.get(c.name)
                if end is None or book is None:
                    planned += mine
                    continue
                share = book.share(a.id, planned_end=end, scheduled=mine, reported_s=reported, end_s=end_s)
                planned += share.planned
                if share.unfired > 0:
                    gaps.append((share.from_s, share.to_s))
            if gaps:
                shares[a.id] = Share(planned, scheduled, min(g[0] or 0.0 for g in gaps), max(g[1] or 0.0 for g in gaps))
            else:
                shares[a.id] = Share(planned, scheduled)
        return shares
