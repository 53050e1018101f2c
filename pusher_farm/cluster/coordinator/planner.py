"""The coordinator's planner: the run's plan, its epochs, its stops, and where every slot went.

One path for every change of plan. A run deals every scenario (slots and members alike) among
its agents by one set of weights (their capacities). A lost agent's share moves to the others,
a late agent gets one, and a runtime change (a scenario's rate, users, lanes or cap on calls in
flight) takes effect, each from a new epoch at one instant announced far enough ahead for every
agent to hear of it (``start_lead`` + two worst round trips): each scenario of slots starts it
at its first slot due then, members change hands then, and a changed load is the same as the
old up to then. Every question about a scenario's load goes to its load model.

A stop names one instant too (every agent halts each scenario at its point due then), for the
whole run or for one scenario (its feed ran dry). Accounting (``shares``) is per scenario: each
agent planned its shards' slots up to the scenario's planned end (``books``), a model of members
the calls it started.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pusher_farm.cluster.coordinator.actions import Action, Log, Send
from pusher_farm.cluster.coordinator.books import FarmEpoch, PlanBook, Share
from pusher_farm.cluster.coordinator.membership import GONE, AgentRecord, AgentState
from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.results import EpochSummary
from pusher_farm.core.run import Run
from pusher_farm.errors import InvalidOption, PusherError
from pusher_farm.items.dealer import credit_within

__all__ = ["Planner"]

#: what a runtime change may set, besides the load models' knobs
_CAPS = ("overtime",)


class Planner:
    """See the module docstring."""

    def __init__(self, run: Run, run_id: str, timing: Timing) -> None:
        #: the run as it stands (a runtime change replaces a scenario's load or cap)
        self.run = run
        self.run_id = run_id
        self.timing = timing
        self.start_at: float | None = None
        #: every epoch of the run, the first included
        self.epochs: list[FarmEpoch] = []
        #: the scenarios stopped before their end, each with the instant (seconds from the start)
        self.stops: dict[int, float] = {}
        #: the user (or a watch) cut the whole run short: planned ends where agents got
        self.cut = False
        self._now = 0.0

    # -- the start ----------------------------------------------------------------------------

    def prepare(self, agent: AgentRecord, now: float) -> Send:
        agent.last_sent = now
        scenarios = [[c.target, dict(c.params)] for c in self.run]
        return Send(agent.id, "prepare", {"run": self.run_id, "scenarios": scenarios})

    def start(self, used: list[AgentRecord], now: float) -> list[Action]:
        """Every agent of the run is prepared: deal every scenario among them and start."""
        self._now = now
        self.start_at = now + self.timing.start_lead + 2 * _worst_rtt(used)
        owners, names = FarmEpoch.deal([(a.id, a.name, a.capacity) for a in used])
        self.epochs.append(FarmEpoch(0.0, tuple(0 for _ in self.run), owners, names, "start"))
        actions: list[Action] = []
        for agent, (_, shard) in zip(used, owners, strict=True):
            agent.shard, agent.state = shard, AgentState.RUNNING
            actions.append(self._start_message(agent, self.epochs[0].firsts, 0.0))
        actions.append(Log("info", f"run {self.run_id} starts on {len(used)} agents"))
        return actions

    def _start_message(self, agent: AgentRecord, firsts: tuple[int, ...], from_s: float) -> Send:
        assert self.start_at is not None and agent.shard is not None
        agent.share = agent.shard.share
        credits = tuple(credit_within(c.load.credit(agent.share)) if c.feed is not None and c.load is not None else 0
                        for c in self.run)  # fmt: skip
        plan = AgentPlan(self.run_id, self.start_at, agent.offset, agent.shard.index, agent.shard.weights,
                         self.run.scenarios, firsts, from_s, credits)  # fmt: skip
        agent.last_sent = self._now
        return Send(agent.id, "start", {"run": self.run_id, "plan": plan.to_wire()})

    # -- epochs ---------------------------------------------------------------------------------

    def epoch_at(self, live: Sequence[AgentRecord], now: float) -> float | None:
        """Seconds from the start of a new epoch announced now, far enough ahead for every
        agent to hear of it and no earlier than the last one (None: the run ends first)."""
        assert self.start_at is not None
        at = now + self.timing.start_lead + 2 * _worst_rtt(live) - self.start_at
        at = max(at, self.epochs[-1].at_s)
        return None if at >= self.run.length() else at

    def reshard(
        self,
        live: list[AgentRecord],
        at: float,
        reason: str,
        now: float,
        *,
        joining: AgentRecord | None = None,
        changes: Sequence[dict[str, Any]] = (),
    ) -> list[Action]:
        """A new epoch from ``at``: every scenario dealt among ``live`` by capacity (an
        ``epoch`` to each running agent, a ``start`` to one that joins now), with ``changes``."""
        self._now = now
        last = self.epochs[-1].firsts
        firsts = tuple(c.load.epoch_slot(at, after) for c, after in zip(self.run, last, strict=True))  # type: ignore[union-attr]
        owners, names = FarmEpoch.deal([(a.id, a.name, a.capacity) for a in live])
        self.epochs.append(FarmEpoch(at, firsts, owners, names, reason))
        actions: list[Action] = []
        for agent, (_, shard) in zip(live, owners, strict=True):
            agent.shard = shard
            if agent is joining:
                actions.append(self._start_message(agent, firsts, at))
                continue
            agent.share = shard.share
            agent.last_sent = now
            fields: dict[str, Any] = {"run": self.run_id, "at_s": at, "weights": list(shard.weights),
                                      "index": shard.index, "firsts": list(firsts)}  # fmt: skip
            if changes:
                fields["changes"] = [dict(c) for c in changes]
            actions.append(Send(agent.id, "epoch", fields))
        actions.append(Log("warning", f"{reason}: {len(live)} agents share every scenario from t={at:.2f}s"))
        return actions

    def rebalance(self, gone: AgentRecord, live: list[AgentRecord], now: float) -> list[Action]:
        """Move ``gone``'s share of every scenario to the ``live`` agents from a new epoch."""
        at = self.epoch_at(live, now)
        if not live or at is None:
            return [Log("warning", f"{gone.label()} left near the end: nothing left to rebalance")]
        gone.share = 0.0
        gone.share_ends_s = at
        why = "lost" if gone.state is AgentState.LOST else "stopped"
        return self.reshard(live, at, f"{gone.name} {why}", now)

    def lost(self, agent: AgentRecord, live: list[AgentRecord], now: float, *, items: bool) -> list[Action]:
        """``agent`` is lost in the running run: by the run's policy its share moves to the
        ``live`` agents ("rebalance") or stays with nobody ("continue"); if it can still hear us,
        it stops where its share moved (with ``items``, which went to others: now)."""
        actions: list[Action] = []
        if self.run.settings.on_agent_loss == "rebalance":
            actions += self.rebalance(agent, live, now)
        if agent.share_ends_s is not None or items:
            actions += self.stop_lost(agent, at_once=items)
        return actions

    def join(self, agent: AgentRecord, running: list[AgentRecord], now: float) -> list[Action]:
        """A late agent, prepared: it takes a share of every scenario from the next epoch."""
        at = self.epoch_at([*running, agent], now)
        if at is None or self.cut:
            agent.state = AgentState.SPARE
            return [Log("info", f"{agent.label()} joined too late to take a share")]
        agent.state = AgentState.RUNNING
        return self.reshard([*running, agent], at, f"{agent.name} joined", now, joining=agent)

    def change(
        self, live: list[AgentRecord], now: float, scenario: str | None, wanted: Mapping[str, float]
    ) -> tuple[list[Action], dict[str, Any]]:
        """A runtime change of one scenario (``scenario``: its name; None: the only one): its
        load model's knobs (``rps``, ``users``, ``parallel``) and its cap on calls in flight
        (``overtime``), from a new epoch. ``InvalidOption`` when it cannot change now."""
        if self.cut:
            raise InvalidOption("the run is stopping: nothing to change")
        if scenario is None:
            if len(self.run) > 1:
                names = ", ".join(c.name for c in self.run)
                raise InvalidOption(f"the run has several scenarios: name the one to change ({names})")
            index = 0
        else:
            index = self.run.index(scenario)
        if index in self.stops:
            raise InvalidOption(f"scenario {self.run.scenarios[index].name!r} has stopped: nothing to change")
        at = self.epoch_at(live, now)
        if not live or at is None:
            raise InvalidOption("the run ends before a change could take effect")
        config = self.run.scenarios[index]
        assert config.load is not None
        knobs = {k: v for k, v in wanted.items() if k not in _CAPS}
        caps = {k: int(v) for k, v in wanted.items() if k in _CAPS}
        try:
            load = config.load.changed(at, knobs) if knobs else None
            changed = config.replace(**({"load": load} if load is not None else {}), **caps)
        except PusherError as exc:
            raise InvalidOption(f"scenario {config.name!r}: {exc.reason}") from None
        self.run = self.run.replaced(index, changed)
        change: dict[str, Any] = {"sc": index}
        if load is not None:
            change["load"] = load.to_wire()
        change.update(caps)
        words = ", ".join(f"{k} {_now_of(config, k, at)} -> {v:g}" for k, v in wanted.items())
        actions = self.reshard(live, at, f"scenario {config.name!r} changed: {words}", now, changes=[change])
        info = {"scenario": config.name, "at_s": round(at, 6), "from_slot": self.epochs[-1].firsts[index],
                **dict(wanted.items())}  # fmt: skip
        return actions, info

    # -- stops ----------------------------------------------------------------------------------

    def stop_at(self, used: Sequence[AgentRecord], now: float) -> float:
        """The instant (seconds from the start) a stop asked for now takes effect at: every
        agent halts there (a stop before the start: at the start, never at a negative time)."""
        assert self.start_at is not None
        return max(0.0, now - self.start_at + self.timing.stop_lead + 2 * _worst_rtt(used))

    def stop(
        self, agents: Sequence[AgentRecord], now: float, *, abort: bool, at_s: float | None, scenario: int | None = None
    ) -> list[Action]:
        """Tell every agent of the run to stop (``scenario``: only that one): ``abort``: at once,
        cancelling its calls in flight; else at ``at_s`` (each scenario at its point due then),
        or at once when None."""
        for i in range(len(self.run)) if scenario is None else (scenario,):
            self.stops.setdefault(i, at_s if at_s is not None else max(0.0, now - (self.start_at or now)))
        actions: list[Action] = []
        for a in agents:
            if a.state in GONE:
                continue
            fields: dict[str, Any] = {"run": self.run_id, "abort": abort}
            if at_s is not None and not abort and a.index >= 0:
                fields["at_s"] = at_s
            if scenario is not None:
                fields["sc"] = scenario
            a.last_sent = now
            actions.append(Send(a.id, "stop", fields))
        return actions

    def dry(self, index: int, dry_s: float, agents: Sequence[AgentRecord], now: float) -> list[Action]:
        """Scenario ``index``'s items were all done ``dry_s`` seconds into the run: it stops (a
        drain: its work is done; rate mode: its feed ran dry), at one instant on every agent."""
        if self.cut or index in self.stops:
            return []
        c = self.run.scenarios[index]
        what = "every item is done" if c.load is not None and c.load.needs_items else "the feed ran dry"
        used = [a for a in agents if a.state is not AgentState.SPARE]
        log = Log("info", f"scenario {c.name!r}: {what} at {dry_s:.2f} s: stopping it")
        return [log, *self.stop(agents, now, abort=False, at_s=self.stop_at(used, now), scenario=index)]

    def stop_lost(self, agent: AgentRecord, *, at_once: bool) -> list[Action]:
        """Tell a lost agent whose share moved to stop where the others took over: if it can
        still hear us (the loss was one-way), it stops there and never doubles a slot;
        ``at_once`` (its items went to others): now, its calls in flight too."""
        agent.told_to_stop = True
        if at_once:
            return [Send(agent.id, "stop", {"run": self.run_id, "abort": True})]
        if agent.share_ends_s is None:
            return []
        return [Send(agent.id, "stop", {"run": self.run_id, "abort": False, "at_s": agent.share_ends_s})]

    # -- where every slot went --------------------------------------------------------------------

    def planned_ends(self, used: Sequence[AgentRecord]) -> list[int | None]:
        """Each scenario's planned end: the slot below which its slots were all planned (None: a
        model of members, which planned the calls it started)."""
        ends: list[int | None] = []
        for i, c in enumerate(self.run):
            assert c.load is not None
            reaches = [r for r in (a.done.reach(i) for a in used if a.done is not None) if r is not None]
            ends.append(c.load.planned_end(cut=i in self.stops, reaches=reaches, stop_s=self.stops.get(i)))
        return ends

    def shares(self, used: list[AgentRecord], scheduled: Mapping[tuple[str, str], int]) -> dict[str, Share]:
        """Each agent's share of every scenario's planned slots, with what it scheduled
        (``scheduled``: per agent and scenario, from its merged windows), summed per agent:
        planned == scheduled + unfired for each and in total."""
        ends = self.planned_ends(used)
        end_s = self._end_s(used)
        out: dict[str, Share] = {}
        for a in used:
            planned = total = 0
            gaps: list[tuple[float, float]] = []
            reported = a.stopped_s if a.stopped_s is not None else a.reported_until_s
            for i, c in enumerate(self.run):
                mine = scheduled.get((a.id, c.name), 0)
                total += mine
                end = ends[i]
                if end is None:
                    planned += mine
                    continue
                share = PlanBook(self.epochs, i).share(a.id, planned_end=end, scheduled=mine, reported_s=reported,
                                                       end_s=end_s)  # fmt: skip
                planned += share.planned
                if share.unfired > 0:
                    gaps.append((share.from_s or 0.0, share.to_s or 0.0))
            if gaps:
                out[a.id] = Share(planned, total, min(g[0] for g in gaps), max(g[1] for g in gaps))
            else:
                out[a.id] = Share(planned, total)
        return out

    def scenario_planned(self, used: list[AgentRecord], scheduled: Mapping[tuple[str, str], int]) -> dict[str, int]:
        """Each scenario's planned calls, by name (a model of members: what it started)."""
        ends = self.planned_ends(used)
        return {
            c.name: end if end is not None else sum(n for (_, name), n in scheduled.items() if name == c.name)
            for c, end in zip(self.run, ends, strict=True)
        }

    def _end_s(self, used: Sequence[AgentRecord]) -> float:
        """Seconds from the start to where the planned slots end."""
        length = self.run.length()
        if not self.cut:
            return length
        stops = [a.stopped_s for a in used if a.stopped_s is not None]
        return min(length, max(stops, default=min(self.stops.values(), default=0.0)))

    def summaries(self) -> list[EpochSummary]:
        """The epochs after the first, for the report (``from_slot``: the first scenario's of
        slots, 0 when it has none)."""
        slotted = next((i for i, c in enumerate(self.run) if c.load is not None and c.load.slotted), None)
        return [EpochSummary(e.firsts[slotted] if slotted is not None else 0, e.at_s, e.names, e.reason)
                for e in self.epochs[1:]]  # fmt: skip


def _worst_rtt(agents: Sequence[AgentRecord]) -> float:
    return max((a.rtt for a in agents if not math.isnan(a.rtt)), default=0.0)


def _now_of(config: Any, knob: str, at: float) -> str:
    """What ``knob`` of ``config`` is at ``at`` (for the epoch's reason)."""
    load = config.load
    if knob == "overtime":
        return str(config.overtime)
    if knob == "rps":
        return f"{load.rate_at(at):g}"
    return f"{load.members_at(at):g}"
