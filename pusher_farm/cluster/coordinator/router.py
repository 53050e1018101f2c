"""The coordinator's decisions as a state machine with no I/O: a router over small parts.

It takes events (a frame from a peer, a clock tick, the user's stop, a runtime change) with the
time they happened and returns actions (send a message, accept a window, log, finish the run).
The drivers only move frames, so every decision here is tested without sockets and without
sleeping (``transport.inproc`` and a fake clock).

Phases: WAITING for the expected agents (each measures its clock offset with a few pings as
soon as it says hello) → PREPARING (each agent resolves every scenario's target on its own
host: ready or refuse) → RUNNING (plans sent with an absolute start time; windows acknowledged
and deduplicated; heartbeats both ways) → FINISHED.

The router owns the phases and the handler table, and decides what an event means for the run
as a whole (a lost agent: its items back, its share moved, maybe the end); the parts decide the
rest: what frames get in (``gate``: nothing a peer sends is fatal), who is in the farm
(``membership``), the plan and its epochs (``planner``), windows, done records and the end
(``intake``), work items (``dealing``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pusher_farm._version import __version__
from pusher_farm.cluster.coordinator.actions import Action, Finish, Log, Phase, Send
from pusher_farm.cluster.coordinator.dealing import Dealing
from pusher_farm.cluster.coordinator.gate import Gate
from pusher_farm.cluster.coordinator.intake import Intake
from pusher_farm.cluster.coordinator.membership import MAX_SPARES, AgentRecord, AgentState, Membership
from pusher_farm.cluster.coordinator.planner import Planner
from pusher_farm.cluster.protocol.messages import Message
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.run import Run
from pusher_farm.errors import InvalidOption
from pusher_farm.items.dealer import Dealer

__all__ = ["CoordinatorState"]


Handler = Callable[[AgentRecord, Message, float], list[Action]]

#: what a lost agent may still send (what it measured is welcome; nothing else is heard)
_FROM_LOST = ("window", "done", "heartbeat", "pong", "bye", "want")


class CoordinatorState:
    """One farm run's decisions (see the module docstring). ``dealers`` hand out each
    scenario's work items (by its position in ``run``)."""

    def __init__(
        self,
        run: Run,
        expect: int,
        timing: Timing | None = None,
        now: float = 0.0,
        package: str = __version__,
        dealers: Mapping[int, Dealer] | None = None,
    ) -> None:
        if expect < 1:
            raise InvalidOption("expect at least one agent")
        for c in run:
            if c.target is None:
                raise InvalidOption(f"scenario {c.name!r}: a farm's agents need the target by name")
        self.expect = expect
        self.timing = timing or Timing()
        self.package = package
        self.phase = Phase.WAITING
        self.run_id = uuid.uuid4().hex[:12]
        self.gate = Gate(package, self.timing.log_every)
        self.members = Membership(expect, self.timing, package, now)
        self.planner = Planner(run, self.run_id, self.timing)
        self.intake = Intake(self.run_id, self.timing)
        self.dealing = Dealing(self.run_id, dealers or {})
        self.finished: Finish | None = None
        self._last_beat = now
        self._now = now
        self._handlers: dict[str, Handler] = {
            "pong": self._on_pong,
            "heartbeat": self._on_heartbeat,
            "bye": self._on_bye,
            "ready": self._on_ready,
            "refuse": self._on_refuse,
            "window": self._on_window,
            "done": self._on_done,
            "want": self._on_want,
        }

    # -- what the parts hold, as the drivers and reports read it ----------------------------------

    @property
    def run(self) -> Run:
        """The run as it stands (a runtime change replaces a scenario's load or cap)."""
        return self.planner.run

    @property
    def agents(self) -> dict[str, AgentRecord]:
        return self.members.agents

    @property
    def start_at(self) -> float | None:
        return self.planner.start_at

    @property
    def bad_frames(self) -> int:
        """Frames dropped because they were not valid messages (whoever sent them)."""
        return self.gate.bad_frames

    # -- events -----------------------------------------------------------------------------

    def on_frame(self, peer: str, frame: bytes, now: float) -> list[Action]:
        """A frame from ``peer``: through the gate (decoded and checked, or dropped or refused),
        then handled."""
        self._now = now
        msg, actions = self.gate.decode(peer, frame, now, known=peer in self.agents)
        return actions if msg is None else self.on_message(peer, msg, now)

    def on_message(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        if msg.type == "hello":
            return self._stamped(self._on_hello(agent_id, msg, now))
        agent = self.agents.get(agent_id)
        if agent is None:
            return self.gate.bad(f"{msg.type!r} from unknown peer {agent_id!r}", now)
        agent.last_seen = now
        handler = self._handlers.get(msg.type)
        if handler is None:
            return self.gate.bad(f"{agent.label()} sent {msg.type!r}, which agents never send", now)
        if agent.state is AgentState.LOST:
            if msg.type not in _FROM_LOST:
                return [Log("info", f"{agent.label()} was lost: its {msg.type!r} is ignored for this run")]
            if not agent.told_to_stop and (agent.share_ends_s is not None or self.dealing.dealers):
                # it is talking while lost: make sure it stops where its share moved (now, when
                # its items went to others)
                return [*self.planner.stop_lost(agent, at_once=bool(self.dealing.dealers)), *handler(agent, msg, now)]
        return self._stamped(handler(agent, msg, now))

    def on_tick(self, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        actions: list[Action] = []
        if now - self._last_beat >= min(self.timing.heartbeat / 4, 0.25):
            # Heartbeat whoever heard nothing else from us lately, and look for silent agents:
            # a few times per heartbeat, not on every tick.
            self._last_beat = now
            beats, silent, gone_again = self.members.beat(now)
            actions += beats
            for agent in silent:
                actions += self._lose(agent, now, f"silent for {now - agent.last_seen:.1f}s")
            if gone_again and self.phase is Phase.RUNNING:
                actions += self._maybe_finish(now)
        if self.phase in (Phase.WAITING, Phase.PREPARING):
            stalled = self.members.stalled(now, preparing=self.phase is Phase.PREPARING)
            if stalled:
                actions.append(self._finish(False, stalled, 2))
        elif self.phase is Phase.RUNNING:
            abort_deadline = self.intake.abort_deadline
            if abort_deadline is not None and now >= abort_deadline:
                missing = [a.name for a in self.members.used() if not self.intake.settled(a)]
                text = f"aborted: windows not yet received from {', '.join(missing)} are not in this report"
                actions.append(self._finish(False, text, 1))
            elif now > self.intake.deadline:  # done and lost are handled as they come
                actions += self._maybe_finish(now)
        return self._stamped(actions)

    def stop(self, now: float, *, abort: bool = False) -> list[Action]:
        """The user asked to stop (Ctrl-C): agents stop scheduling and report what ran; with
        ``abort`` they also cancel their calls in flight, and the report comes within
        ``abort_grace`` with what has arrived by then."""
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        agents = list(self.agents.values())
        if self.phase is not Phase.RUNNING:
            return [*self.planner.stop(agents, now, abort=True, at_s=None),
                    self._finish(False, "stopped before the run started", 1)]  # fmt: skip
        self.planner.cut = True
        self.intake.stopping(now, self.run, abort=abort)
        at_s = None if abort else self.planner.stop_at(self.members.used(), now)
        return self._stamped([*self.planner.stop(agents, now, abort=abort, at_s=at_s), *self._maybe_finish(now)])

    def change(self, now: float, scenario: str | None = None, **changes: float) -> tuple[list[Action], dict[str, Any]]:
        """A runtime change of one scenario (its rate, users, lanes or cap on calls in flight)
        from a new epoch at one instant; ``InvalidOption`` when the run cannot change now."""
        self._now = now
        if self.phase is not Phase.RUNNING:
            raise InvalidOption(f"the run is {self.phase.value}: nothing to change")
        actions, info = self.planner.change(self.members.running(), now, scenario, changes)
        return self._stamped(actions), info

    def _stamped(self, actions: list[Action]) -> list[Action]:
        """Tell each agent addressed how long ago this coordinator last heard it (``seen``):
        it keeps its load going only while that is recent (its lease, see ``Timing.lease``).
        A lost agent gets no ``seen``, so nothing it hears renews its lease."""
        for action in actions:
            if isinstance(action, Send):
                agent = self.agents.get(action.agent)
                if agent is not None and agent.state is not AgentState.LOST:
                    action.fields["seen"] = max(0.0, self._now - agent.last_seen)
        return actions

    # -- membership ---------------------------------------------------------------------------

    def _on_hello(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        existing = self.agents.get(agent_id)
        if existing is not None:
            return self.members.back(existing, now, self.phase is Phase.RUNNING)
        joining = self.phase is Phase.RUNNING and self.run.settings.late_join and not self.planner.cut
        actions = self.members.add(agent_id, msg.record, now, waiting=self.phase is Phase.WAITING, joining=joining)
        if actions is None:
            return self.gate.refuse(agent_id, f"{MAX_SPARES} spare agents are connected already", None)
        return actions

    def _on_pong(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        synced, actions = self.members.pong(agent, msg["t0"], msg["t1"], msg["t2"], now)
        if not synced:
            return actions
        if agent.joining:
            return [self.planner.prepare(agent, now)] if self.phase is Phase.RUNNING else []
        used = self.members.used()
        if self.phase is not Phase.WAITING or not self.members.all_synced():
            return []
        self.phase = Phase.PREPARING
        self.members.preparing(now)
        return [self.planner.prepare(a, now) for a in used]

    def _on_heartbeat(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if "cpu" in msg.body:
            agent.cpu = msg["cpu"]
        return []

    def _on_bye(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return []
        if agent.state in (AgentState.DONE, AgentState.LEFT):
            agent.state = AgentState.LEFT  # done and gone, as an --once agent should be
            return []
        if agent.state is AgentState.LOST:
            agent.returned = False
            return self._maybe_finish(now)
        return self._lose(agent, now, "said bye")

    def _lose(
        self, agent: AgentRecord, now: float, why: str, *, rebalance: bool = True, settle: bool = True
    ) -> list[Action]:
        """``agent`` is gone: before the run it is dropped; in it, it is lost (its items go to
        the others, its share moves by the run's policy); ``settle``: see at once whether the
        run is over."""
        lost, actions = self.members.lose(agent, now, why, waiting=self.phase is Phase.WAITING)
        if not lost:
            return actions
        actions += self.dealing.lost(agent)
        if self.phase is Phase.PREPARING:
            actions.append(self._finish(False, f"{agent.label()} was lost while preparing: {why}", 1))
        elif self.phase is Phase.RUNNING:
            if rebalance and self.run.settings.on_agent_loss == "abort":
                actions += self.planner.stop(list(self.agents.values()), now, abort=True, at_s=None)
                actions.append(self._finish(False, f"{agent.label()} lost ({why}): run aborted", 1))
                return actions
            if rebalance:
                actions += self.planner.lost(agent, self.members.running(), now, items=bool(self.dealing.dealers))
            if settle:
                actions += self._maybe_finish(now)
        return actions

    # -- the plan -------------------------------------------------------------------------------

    def _on_ready(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        if agent.joining and agent.state is AgentState.SYNCED and self.phase is Phase.RUNNING:
            agent.index = max(a.index for a in self.agents.values()) + 1
            return self.planner.join(agent, self.members.running(), now)
        if self.phase is not Phase.PREPARING or agent.state is not AgentState.SYNCED:
            return []
        agent.state = AgentState.PREPARED
        used = self.members.used()
        if any(a.state is not AgentState.PREPARED for a in used):
            return []
        self.phase = Phase.RUNNING
        actions = self.planner.start(used, now)
        assert self.start_at is not None
        self.intake.started(self.start_at, self.run)
        return actions

    def _on_refuse(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
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
        stops = self.planner.stop(list(self.agents.values()), now, abort=True, at_s=None)
        return [*stops, self._finish(False, reason, 2, agent.error_kind, error)]

    # -- windows, done, the end -------------------------------------------------------------------

    def _on_window(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] == self.run_id and msg["seq"] not in agent.ledger.seqs and self.intake.beyond(msg["seq"]):
            return self.gate.bad(f"{agent.label()} sent window seq {msg['seq']}, beyond any this run can have", now)
        return self.intake.window(agent, msg.record, self.run, now) + self._check_done(agent, now)

    def _on_done(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        return self.intake.done(agent, msg.record, now) + self._check_done(agent, now)

    def _check_done(self, agent: AgentRecord, now: float) -> list[Action]:
        """Once ``agent`` said done and every window it counted is in: it is done, and the run
        may be (a lost agent that came back settles the same way)."""
        if not agent.ledger.complete:
            return []
        actions: list[Action] = []
        if agent.state is AgentState.RUNNING:
            agent.state = AgentState.DONE
            actions.append(Log("info", f"{agent.label()} done: {agent.ledger.expected} windows"))
            actions += self.dealing.lost(agent)  # items it holds and never finished go to the others
            if agent.stopped_itself(self.planner.stops, len(self.run), cut=self.planner.cut):
                # It stopped on its own (its user, or an error): the others take its share.
                why = (agent.done.error if agent.done else None) or "stopped before the end of the run"
                actions.append(Log("warning", f"{agent.label()} {why}"))
                if self.run.settings.on_agent_loss == "rebalance":
                    actions += self.planner.rebalance(agent, self.members.running(), now)
        return actions + self._maybe_finish(now)

    def _maybe_finish(self, now: float) -> list[Action]:
        """The run's end, once the intake says so; past the deadline, whoever has not finished
        is lost first."""
        if self.phase is not Phase.RUNNING:
            return []
        end, overdue = self.intake.verdict(self.members.used(), now)
        if end is not None:
            return [self._finish(*end)]
        actions: list[Action] = []
        for a in overdue:
            actions += self._lose(a, now, "did not finish in time", rebalance=False, settle=False)
        return actions + self._maybe_finish(now) if overdue else actions

    # -- work items -----------------------------------------------------------------------------

    def _on_want(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        index = msg["sc"]
        deal = agent.state is AgentState.RUNNING and self.phase is Phase.RUNNING and index not in self.planner.stops
        actions = self.dealing.want(agent, index, msg["credit"], msg.get("fin", []), now, deal=deal)
        return actions + self._when_dry(now)

    def _when_dry(self, now: float) -> list[Action]:
        """Scenarios whose items are all done stop, at one instant on every agent."""
        if self.phase is not Phase.RUNNING or self.start_at is None:
            return []
        actions: list[Action] = []
        for index in self.dealing.newly_dry(max(0.0, now - self.start_at)):
            actions += self.planner.dry(index, self.dealing.dry_s[index], list(self.agents.values()), now)
        if actions and len(self.planner.stops) == len(self.run):
            self.intake.stopping(now, self.run, abort=False)
        return actions

    def _finish(self, ok: bool, reason: str, status: int, kind: str = "", error: str = "") -> Finish:
        self.phase = Phase.FINISHED
        self.finished = Finish(ok, reason, status, kind, error or reason)
        return self.finished
