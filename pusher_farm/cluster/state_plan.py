"""The coordinator's plan: prepare the agents, start them, and move shares between epochs.

Part of ``CoordinatorState`` (its handler table is split by concern; see ``state``). Sharded
runs deal the farm's global slots among the agents by capacity; a lost agent's share moves to
the others, and a late agent gets one, from a new plan epoch announced far enough ahead for
every agent to hear of it (``start_lead`` + two worst round trips).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pusher_farm.cluster.actions import Action, Log, Phase, Send
from pusher_farm.cluster.epochs import PlanBook
from pusher_farm.cluster.members import AgentRecord, AgentState
from pusher_farm.cluster.plan import AgentPlan, RunSpec
from pusher_farm.cluster.protocol import Message
from pusher_farm.cluster.state_items import credit_for
from pusher_farm.core.schedule import MAX_STAGES, Shard
from pusher_farm.errors import InvalidOption

if TYPE_CHECKING:
    from pusher_farm.cluster.state import CoordinatorState

__all__ = ["PlanMixin"]


class PlanMixin:
    book: PlanBook | None

    def init_plan(self: CoordinatorState) -> None:
        #: the epochs of a sharded run (None: each agent runs its own whole profile)
        profile = self.spec.profile_for(0)
        self.book = PlanBook(profile) if self.spec.one_rate and profile is not None else None

    def plan_handlers(self: CoordinatorState) -> dict[str, Any]:
        return {"ready": self._on_ready, "refuse": self._on_refuse}

    def synced(self: CoordinatorState, agent: AgentRecord, now: float) -> list[Action]:
        """``agent``'s clock is measured: prepare it (a late joiner) or, once every expected
        agent is, all of them."""

        if agent.joining:
            return [self._prepare(agent)] if self.phase is Phase.RUNNING else []
        used = self._used()
        if self.phase is not Phase.WAITING or len(used) < self.expect:
            return []
        if any(a.state is not AgentState.SYNCED for a in used):
            return []
        self.phase = Phase.PREPARING
        self.preparing_since = now
        for i, a in enumerate(used):
            a.index = i
        return [self._prepare(a) for a in used]

    def _prepare(self: CoordinatorState, agent: AgentRecord) -> Action:

        config = self.spec.config_for(max(agent.index, 0))
        agent.last_sent = self._now
        fields = {"run": self.run_id, "target": config.target, "params": dict(config.params)}
        if self.spec.scenarios:
            fields["scenarios"] = [[c.target, dict(c.params)] for c in self.spec.configs]
        return Send(agent.id, "prepare", fields)

    def _on_ready(self: CoordinatorState, agent: AgentRecord, msg: Message, now: float) -> list[Action]:

        if msg["run"] != self.run_id:
            return []
        if agent.joining and agent.state is AgentState.SYNCED and self.phase is Phase.RUNNING:
            agent.index = max(a.index for a in self.agents.values()) + 1
            return self._join(agent, now)
        if self.phase is not Phase.PREPARING or agent.state is not AgentState.SYNCED:
            return []
        agent.state = AgentState.PREPARED
        used = self._used()
        if any(a.state is not AgentState.PREPARED for a in used):
            return []
        return self._start(used, now)

    def _start(self: CoordinatorState, used: list[AgentRecord], now: float) -> list[Action]:

        self.phase = Phase.RUNNING
        rtts = [a.rtt for a in used if not math.isnan(a.rtt)]
        self.start_at = now + self.timing.start_lead + 2 * max(rtts, default=0.0)
        self.started_running(now)
        if self.book is not None:
            shards = self.book.open([(a.id, a.name, a.capacity) for a in used], from_slot=0, at_s=0.0, reason="start")
            for agent, shard in zip(used, shards, strict=True):
                agent.shard = shard
        elif self.shares_users:  # scenarios or users: every scenario dealt by the same weights
            for agent, shard in zip(used, self.open_scenarios(used), strict=True):
                agent.shard = shard
        elif self.spec.sharded:  # drain lanes: no slots to deal, the shares split a rate cap, if any
            weights = tuple(a.capacity for a in used)
            for i, agent in enumerate(used):
                agent.shard = Shard(i, weights)
        actions: list[Action] = []
        for agent in used:
            agent.state = AgentState.RUNNING
            actions.append(self._start_message(agent, first=0))
        actions.append(Log("info", f"run {self.run_id} starts on {len(used)} agents"))
        return actions

    def _start_message(
        self: CoordinatorState,
        agent: AgentRecord,
        first: int,
        firsts: list[int | None] | None = None,
        from_s: float = 0.0,
    ) -> Action:
        """The ``start`` that gives ``agent`` its plan: its shard from slot ``first`` on
        (sharded runs), or the whole of its own profile."""

        assert self.start_at is not None
        shard = agent.shard
        agent.share = shard.share if shard is not None else 1.0
        config = self.spec.config_for(agent.index)
        credit = 0
        if self.dealer is not None:
            stages = config.profile.stages if config.profile is not None else ()
            peak = max((max(s.start, s.end) for s in stages), default=0.0)
            credit = credit_for(peak, agent.share, config.parallel)
        plan = AgentPlan(
            run=self.run_id,
            start_at=self.start_at,
            offset=agent.offset,
            index=shard.index if shard is not None else 0,
            weights=shard.weights if shard is not None else None,
            first=first,
            config=config,
            credit=credit,
            scenarios=self.spec.configs if self.spec.scenarios else (),
            firsts=tuple(-1 if f is None else f for f in firsts) if firsts is not None else (),
            from_s=from_s,
        )
        agent.last_sent = self._now
        return Send(agent.id, "start", {"run": self.run_id, "plan": plan.to_wire()})

    def _on_refuse(self: CoordinatorState, agent: AgentRecord, msg: Message, now: float) -> list[Action]:

        if msg["run"] != self.run_id:
            return []
        agent.error = msg["error"]
        agent.error_kind = msg.get("kind", "")
        if agent.joining:
            if agent.shard is not None:  # it refused the plan it joined with: its share moves on
                return self._lose(agent, now, f"refused its plan: {msg['error']}")
            agent.state = AgentState.SPARE
            return [Log("warning", f"{agent.label()} cannot join: {msg['error']}")]
        kind = f"{agent.error_kind}: " if agent.error_kind else ""
        reason = f"{agent.label()} cannot run the target: {kind}{agent.error}"
        error = f"{agent.label()}: {agent.error}"
        return [*self._stop_all(abort=True), self._finish(False, reason, 2, agent.error_kind, error)]

    # -- stopping ---------------------------------------------------------------------------

    def _stop_lost(self: CoordinatorState, agent: AgentRecord) -> list[Action]:
        """Tell a lost agent whose share moved to stop where the others took over: if it can
        still hear us (the loss was one-way), it stops there and never doubles a slot."""
        if self.spec.drain:  # its items went to others: stop at once, calls in flight too
            return [Send(agent.id, "stop", {"run": self.run_id, "abort": True})]
        if agent.share_ends_s is not None:  # a run of scenarios: each stops at its slot due then
            return [Send(agent.id, "stop", {"run": self.run_id, "abort": False, "at_s": agent.share_ends_s})]
        if agent.share_ends is None:
            return []
        return [Send(agent.id, "stop", {"run": self.run_id, "abort": False, "at_slot": agent.share_ends})]

    def _stop_all(self: CoordinatorState, *, abort: bool, at_s: float | None = None) -> list[Action]:
        """Tell every agent of the run to stop: ``abort``: at once, cancelling its calls in
        flight; else at the slot due ``at_s`` seconds from the start (all at the same slot of
        a shared schedule), or at once when not given."""
        actions: list[Action] = []
        for a in self.agents.values():
            if a.state in (AgentState.LOST, AgentState.LEFT, AgentState.SPARE):
                continue
            fields: dict[str, Any] = {"run": self.run_id, "abort": abort}
            profile = self.spec.profile_for(max(a.index, 0))
            if at_s is not None and not abort and a.index >= 0 and not self.spec.drain:
                if self.spec.one_rate and profile is not None:
                    fields["at_slot"] = profile.first_slot_at(at_s)
                else:  # each scenario stops at its slot due then (users: at that time)
                    fields["at_s"] = at_s
            a.last_sent = self._now
            actions.append(Send(a.id, "stop", fields))
        return actions

    # -- epochs -----------------------------------------------------------------------------

    def _epoch_start(self: CoordinatorState, live: list[AgentRecord], now: float) -> tuple[float, int] | None:
        """(seconds from the start, first slot) of a new plan epoch announced now, far enough
        ahead for every agent to hear of it; ``None`` when the schedule ends before it."""
        assert self.start_at is not None and self.book is not None
        length = self.spec.policy.length()
        rtts = [a.rtt for a in live if not math.isnan(a.rtt)]
        at = now + self.timing.start_lead + 2 * max(rtts, default=0.0) - self.start_at
        # Epochs never go back: one announced later starts no earlier than the one before it
        # (agents apply them in slot order).
        last = self.book.epochs[-1]
        at = max(at, last.at_s)
        if at >= length:
            return None
        return at, max(self.book.profile.first_slot_at(at), last.from_slot)

    def _reshard(
        self: CoordinatorState,
        live: list[AgentRecord],
        at: float,
        from_slot: int,
        reason: str,
        *,
        joining: AgentRecord | None = None,
    ) -> list[Action]:
        """Deal the slots from ``from_slot`` on among ``live`` by capacity: an ``epoch`` to
        every running agent, a ``start`` to one that joins now."""

        assert self.book is not None
        shards = self.book.open([(a.id, a.name, a.capacity) for a in live], from_slot=from_slot, at_s=at, reason=reason)
        actions: list[Action] = []
        for agent, shard in zip(live, shards, strict=True):
            agent.shard = shard
            if agent is joining:
                actions.append(self._start_message(agent, first=from_slot))
                continue
            agent.share = shard.share
            agent.last_sent = self._now
            fields = {"run": self.run_id, "from_slot": from_slot, "weights": list(shard.weights), "index": shard.index}
            actions.append(Send(agent.id, "epoch", fields))
        actions.append(
            Log("warning", f"{reason}: {len(live)} agents share the rate from slot {from_slot} (t={at:.2f}s)")
        )
        return actions

    def rebalance(self: CoordinatorState, lost: AgentRecord, now: float) -> list[Action]:
        """Move the lost agent's share to the running agents from a new plan epoch, announced
        ahead: slots before it keep the old plan (the lost agent's unreported ones go unfired)."""

        live = [a for a in self._used() if a.state is AgentState.RUNNING]
        epoch = self._epoch_start(live, now)
        if not live or epoch is None:
            return [Log("warning", f"{lost.label()} left near the end: nothing left to rebalance")]
        lost.share = 0.0
        lost.share_ends = epoch[1]
        return self._reshard(
            live, epoch[0], epoch[1], f"{lost.name} {'lost' if lost.state is AgentState.LOST else 'stopped'}"
        )

    def change(
        self: CoordinatorState, now: float, *, rps: float | None = None, overtime: int | None = None
    ) -> tuple[list[Action], dict[str, Any]]:
        """Change the whole farm's rate and/or cap at runtime: a new plan epoch announced ahead
        (like a rebalance), whose profile keeps every slot before it where it was. Returns the
        actions and what changed; ``InvalidOption`` when this run cannot change now."""
        if self.phase is not Phase.RUNNING or self.cut:
            raise InvalidOption(f"the run is {'stopping' if self.cut else self.phase.value}: nothing to change")
        if self.book is None:
            raise InvalidOption(
                "only a farm sharing one rate can change it at runtime (not a drain, a run of scenarios or users, "
                "nor farm())"
            )
        live = [a for a in self._used() if a.state is AgentState.RUNNING]
        epoch = self._epoch_start(live, now)
        if not live or epoch is None:
            raise InvalidOption("the run ends before a change could take effect")
        at, from_slot = epoch
        config = self.spec.policy
        if rps is not None and math.isinf(self.book.profile.duration):
            raise InvalidOption("a run without an end cannot change its rate (give it a duration)")
        if rps is not None and len(self.book.profile.stages) >= MAX_STAGES - 1:
            raise InvalidOption(f"the profile holds {MAX_STAGES} stages at most: no more rate changes in this run")
        old_rate = self.book.profile.rate_at(at)
        profile = self.book.profile.then(at, rps) if rps is not None else None
        changes: dict[str, Any] = {}
        if profile is not None:
            changes["profile"] = profile
        if overtime is not None:
            changes["overtime"] = overtime
        self.spec = RunSpec((config.replace(**changes),))
        reason = "changed:" + (f" rate {old_rate:g} -> {rps:g} rps" if rps is not None else "")
        reason += f" overtime {config.overtime} -> {overtime}" if overtime is not None else ""
        if profile is not None:
            self.book.profile = profile
        actions = self._reshard(live, at, from_slot, reason)
        extra: dict[str, Any] = {}
        if profile is not None:
            extra["profile"] = [[s.duration, s.start, s.end] for s in profile.stages]
        if overtime is not None:
            extra["overtime"] = overtime
        for action in actions:
            if isinstance(action, Send) and action.type == "epoch":
                action.fields.update(extra)
        info = {"from_slot": from_slot, "at_s": round(at, 6), "rps": rps, "overtime": overtime}
        return actions, info

    def _join(self: CoordinatorState, agent: AgentRecord, now: float) -> list[Action]:
        """A late agent, prepared: it takes a share from the next epoch."""

        running = [a for a in self._used() if a.state is AgentState.RUNNING]
        if self.book is None and self.spec.drain:  # drain mode: it takes items from now on
            if self.spec.policy.profile is not None:
                agent.state = AgentState.SPARE
                return [Log("info", f"{agent.label()} stays out: a drain with a rate cap keeps its shares")]
            agent.state = AgentState.RUNNING
            agent.shard = Shard(0, (1.0,))
            return [Log("info", f"{agent.label()} joined: it takes items too"), self._start_message(agent, first=0)]
        if self.shares_users:
            return self.join_scenarios(agent, now)
        if self.book is None:
            agent.state = AgentState.SPARE
            return [Log("info", f"{agent.label()} stays out: each agent of this run follows its own profile")]
        epoch = self._epoch_start([*running, agent], now)
        if epoch is None:
            agent.state = AgentState.SPARE
            return [Log("info", f"{agent.label()} joined too late to take a share")]
        agent.state = AgentState.RUNNING
        return self._reshard([*running, agent], epoch[0], epoch[1], f"{agent.name} joined", joining=agent)
