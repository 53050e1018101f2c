"""The coordinator's reports: windows in (each once), acks out, the run's end, and where every
planned slot went.

Part of ``CoordinatorState`` (see ``state``). A window is accepted once per (agent, seq) and
only if it is valid and within the run (a window a peer made up is counted as rejected, never
merged). The run ends when every agent is done with all its windows in, or lost; after the
deadline (the schedule's end, plus the call timeout, a window and ``end_grace``) whoever has
not finished is lost; after an abort, ``abort_grace`` later at the latest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pusher_farm.cluster.actions import Accept, Action, Log, Phase, Send
from pusher_farm.cluster.epochs import Share, planned_end
from pusher_farm.cluster.members import AgentRecord, AgentState
from pusher_farm.cluster.protocol import Message
from pusher_farm.core.window import Window

if TYPE_CHECKING:
    from pusher_farm.cluster.state import CoordinatorState

__all__ = ["ReportMixin"]


#: windows beyond the run's last possible one, allowed for late results and rounding
_SPARE_WINDOWS = 8


class ReportMixin:
    #: seconds from the start at which the user stopped the run (None: not stopped)
    stop_s: float | None
    #: the coordinator cut the run short (user stop or abort): planned ends where agents got
    cut: bool
    aborted: bool
    #: what went wrong with windows agents sent (each named in the report)
    rejected: list[str]

    def init_reports(self: CoordinatorState) -> None:
        self.stop_s = None
        self.cut = False
        self.aborted = False
        self.rejected = []
        self._abort_deadline: float | None = None
        self._deadline_at = math.inf
        self._last_window = 1 << 40

    def report_handlers(self: CoordinatorState) -> dict[str, Any]:
        return {"window": self._on_window, "done": self._on_done}

    def started_running(self: CoordinatorState, now: float) -> None:
        """The run starts at ``start_at``: fix its deadline and the last window it can have."""
        assert self.start_at is not None
        window = self.spec.policy.window
        longest = max(c.end() + (c.timeout or 0.0) for c in self.spec.configs)
        if math.isfinite(longest):
            self._deadline_at = self.start_at + longest + window + self.timing.end_grace
            self._last_window = math.ceil((longest + window + self.timing.end_grace) / window) + _SPARE_WINDOWS

    def tick_reports(self: CoordinatorState, now: float) -> list[Action]:
        if self._abort_deadline is not None and now >= self._abort_deadline:
            missing = [a.name for a in self._used() if not self._settled(a)]
            return [
                self._finish(
                    False, f"aborted: windows not yet received from {', '.join(missing)} are not in this report", 1
                )
            ]
        if now > self._deadline_at:  # done and lost are handled as they come
            return self._maybe_finish(now)
        return []

    def stop_reports(self: CoordinatorState, now: float, *, abort: bool) -> list[Action]:
        assert self.start_at is not None
        if self.stop_s is None:
            self.stop_s = max(0.0, now - self.start_at)
        self.cut = True
        # A stopped run ends sooner than its schedule: the calls in flight and the last windows.
        window = self.spec.policy.window
        timeout = max((c.timeout or 0.0) for c in self.spec.configs)
        self._deadline_at = min(self._deadline_at, now + 1.0 + timeout + window + self.timing.end_grace)
        if abort:
            self.aborted = True
            self._abort_deadline = now + self.timing.abort_grace
            return [*self._stop_all(abort=True), *self._maybe_finish(now)]
        rtts = [a.rtt for a in self._used() if not math.isnan(a.rtt)]
        # (a stop before the start stops at the start: never at a negative time)
        at_s = max(0.0, now - self.start_at + self.timing.stop_lead + 2 * max(rtts, default=0.0))
        return [*self._stop_all(abort=False, at_s=at_s), *self._maybe_finish(now)]

    # -- windows ----------------------------------------------------------------------------

    def _on_window(self: CoordinatorState, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        seq = msg["seq"]
        if msg["run"] != self.run_id:  # an old run's window: the agent may forget it
            agent.last_sent = now
            return [Send(agent.id, "ack", {"run": msg["run"], "seq": seq})]
        if seq in agent.ledger.seqs:
            return self._ack(agent, force=True)  # a re-sent window we already have
        if seq > 4 * self._last_window:
            return self._bad(f"{agent.label()} sent window seq {seq}, beyond any this run can have", now)
        try:
            window = Window.from_wire(msg["w"])
            if window.index > self._last_window:
                raise ValueError(f"window {window.index} is past the run's end")
            if not window.scenario and not self.spec.scenarios:  # it names no scenario: its agent's one
                window.scenario = self.spec.config_for(max(agent.index, 0)).name
            if not any(c.name == window.scenario for c in self.spec.configs):
                raise ValueError(f"the run has no scenario {window.scenario[:64]!r}")
        except (ValueError, KeyError) as exc:
            # Acknowledged, so the agent forgets it, and named in the report: never merged.
            agent.ledger.receive(seq)
            agent.rejected += 1
            self.rejected.append(f"{agent.label()} sent window {seq} that is not valid ({exc}): it is not counted")
            return [Log("error", self.rejected[-1]), *self._ack(agent, force=True), *self._check_done(agent)]
        agent.ledger.receive(seq)
        agent.reported_until_s = max(agent.reported_until_s, window.start + window.length)
        actions: list[Action] = [Accept(agent.id, seq, window)]
        actions += self._ack(agent, force=agent.ledger.expected is not None)
        return actions + self._check_done(agent)

    def _ack(self: CoordinatorState, agent: AgentRecord, *, force: bool) -> list[Action]:
        seq = agent.ledger.ack(force=force)
        if seq is None:
            return []
        agent.last_sent = self._now
        return [Send(agent.id, "ack", {"run": self.run_id, "seq": seq})]

    def _on_done(self: CoordinatorState, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        agent.ledger.expected = msg["windows"]
        agent.stats.update({k: v for k, v in msg.body.items() if k not in ("run", "windows")})
        return self._ack(agent, force=True) + self._check_done(agent)

    def _check_done(self: CoordinatorState, agent: AgentRecord) -> list[Action]:
        """Once ``agent`` said done and every window it counted is in: it is done, and the run
        may be (a lost agent that came back settles the same way)."""
        if not agent.ledger.complete:
            return []
        actions: list[Action] = []
        if agent.state is AgentState.RUNNING:
            agent.state = AgentState.DONE
            actions.append(Log("info", f"{agent.label()} done: {agent.ledger.expected} windows"))
            actions += self.items_lost(agent)  # items it holds and never finished go to the others
            if agent.stopped_early and not self.cut:
                # It stopped on its own (its user, or an error): the others take its share.
                why = agent.stats.get("error") or "stopped before the end of the run"
                actions.append(Log("warning", f"{agent.label()} {why}"))
                if self.book is not None and self.spec.policy.on_agent_loss == "rebalance":
                    actions += self.rebalance(agent, self._now)
                elif self.shares_users and self.spec.policy.on_agent_loss == "rebalance":
                    actions += self.rebalance_scenarios(agent, self._now)
        return actions + self._maybe_finish(self._now)

    # -- the end ----------------------------------------------------------------------------

    def _settled(self: CoordinatorState, a: AgentRecord) -> bool:
        """Nothing more to wait for from ``a``: done, or lost and not back with windows to hand in."""
        if a.state in (AgentState.DONE, AgentState.LEFT):
            return True
        if a.state is not AgentState.LOST:
            return False
        return not a.returned or a.ledger.complete

    def _maybe_finish(self: CoordinatorState, now: float) -> list[Action]:
        if self.phase is not Phase.RUNNING:
            return []
        used = self._used()
        if all(self._settled(a) for a in used):
            lost = [a for a in used if a.state is AgentState.LOST]
            if self.aborted:
                return [self._finish(False, "aborted: calls in flight were canceled", 1)]
            if lost:
                return [self._finish(False, f"{len(lost)} of {len(used)} agents lost", 1)]
            return [self._finish(True, "", 0)]
        if now > self._deadline_at:
            actions: list[Action] = []
            for a in used:
                if a.state not in (AgentState.DONE, AgentState.LEFT, AgentState.LOST):
                    actions += self._lose(a, now, "did not finish in time", rebalance=False, settle=False)
                a.returned = False  # stop waiting for a lost agent's last windows
            return actions + self._maybe_finish(now)
        return []

    # -- accounting -------------------------------------------------------------------------

    def accounting(
        self: CoordinatorState,
        scheduled: Mapping[str, int],
        by_scenario: Mapping[tuple[str, str], int] | None = None,
    ) -> dict[str, Share]:
        """Each agent's share of the planned slots, with what it scheduled (``scheduled``,
        from its merged windows; ``by_scenario``: per agent and scenario): planned ==
        scheduled + unfired for each and in total."""
        shares: dict[str, Share] = {}
        used = [a for a in self._used() if a.index >= 0 and (self.book is None or a.shard is not None)]
        if self.book is not None:
            done = [a for a in used if "reach" in a.stats]
            length = self.spec.policy.length()
            reaches = [a.stats["reach"] for a in done]
            end = planned_end(self.book.profile, length, cut=self.cut, reaches=reaches, stop_s=self.stop_s)
            end_s = self._end_s(length, done)
            for a in used:
                reported = float(a.stats.get("stopped_s", a.reported_until_s))
                shares[a.id] = self.book.share(
                    a.id, planned_end=end, scheduled=scheduled.get(a.id, 0), reported_s=reported, end_s=end_s
                )
            return shares
        if self.shares_users:
            return self.scenario_accounting(used, by_scenario or {})
        for a in used:
            config = self.spec.config_for(a.index)
            count = scheduled.get(a.id, 0)
            if config.parallel:  # drain mode: an agent planned the calls it started
                shares[a.id] = Share(count, count)
                continue
            assert config.profile is not None
            done = [a] if "reach" in a.stats else []
            length = config.length()
            reaches = [a.stats["reach"] for a in done]
            end = planned_end(config.profile, length, cut=self.cut, reaches=reaches, stop_s=self.stop_s)
            reported = float(a.stats.get("stopped_s", a.reported_until_s))
            shares[a.id] = Share(end, count, reported, self._end_s(length, done)) if end > count else Share(end, count)
        return shares

    def _end_s(self: CoordinatorState, length: float, done: list[AgentRecord]) -> float:
        """Seconds from the start to where the planned slots end."""
        if not self.cut:
            return length
        stops = [float(a.stats["stopped_s"]) for a in done if "stopped_s" in a.stats]
        return min(length, max(stops, default=self.stop_s or 0.0))
