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
rest: who is in the farm (``membership``), the plan and its epochs (``planner``), windows and
done records (``intake``), work items (``dealing``). Nothing a peer sends is fatal: every frame
is decoded and checked (``protocol``) before any handler sees it; what fails is counted, logged
at most every few seconds, and answered with a refusal where the peer should learn why (a
foreign version, an invalid hello).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pusher_farm._version import __version__
from pusher_farm.cluster.coordinator.actions import Action, Finish, Log, Phase, Send, SendFrame
from pusher_farm.cluster.coordinator.dealing import Dealing
from pusher_farm.cluster.coordinator.intake import Intake
from pusher_farm.cluster.coordinator.membership import AgentRecord, AgentState, Membership
from pusher_farm.cluster.coordinator.planner import Planner
from pusher_farm.cluster.protocol.messages import (
    PROTOCOL_VERSION,
    InvalidMessage,
    Message,
    VersionMismatch,
    decode,
    refusal,
)
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.run import Run
from pusher_farm.errors import InvalidOption, ProtocolError
from pusher_farm.items.dealer import Dealer

__all__ = ["CoordinatorState"]


Handler = Callable[[AgentRecord, Message, float], list[Action]]

#: the most strangers whose refusal is remembered (to log each once)
_STRANGERS = 10_000
#: the most agents kept spare (connected but not in the run); more are refused
MAX_SPARES = 1_000
#: the longest peer identity accepted (a ZeroMQ identity is at most 255 bytes; as text, with
#: undecodable bytes escaped, up to four times that)
MAX_IDENTITY = 1024
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
        self.members = Membership(expect, self.timing, package)
        self.planner = Planner(run, self.run_id, self.timing)
        self.intake = Intake(self.run_id, self.timing)
        self.dealing = Dealing(self.run_id, dealers or {})
        self.created = now
        self.preparing_since = now
        self.finished: Finish | None = None
        #: frames dropped because they were not valid messages (whoever sent them)
        self.bad_frames = 0
        self._last_beat = now
        self._now = now
        self._bad_since_log = 0
        self._bad_logged_at = -math.inf
        self._refused: set[str] = set()
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
    def cut(self) -> bool:
        return self.planner.cut

    # -- events -----------------------------------------------------------------------------

    def on_frame(self, peer: str, frame: bytes, now: float) -> list[Action]:
        """A frame from ``peer``: decoded, checked, then handled; whatever is wrong with it is
        counted and dropped (a stranger's garbage) or refused with a reason (a peer of
        another version, or a hello that is not valid)."""
        self._now = now
        if len(peer) > MAX_IDENTITY:
            return self._bad(f"a peer named with {len(peer)} characters", now)
        try:
            msg = decode(frame)
        except VersionMismatch as exc:
            return self._refuse_stranger(
                peer,
                f"this coordinator speaks protocol {PROTOCOL_VERSION} (pusher-farm {self.package}); "
                f"the agent speaks protocol {exc.peer} (pusher-farm {exc.package or 'unknown'}): upgrade one side",
                exc.peer,
            )
        except InvalidMessage as exc:
            if exc.type == "hello" and peer not in self.agents:
                return self._refuse_stranger(peer, f"invalid hello: {exc.reason}", None)
            return self._bad(f"from {peer!r}: {exc.reason}", now)
        except ProtocolError as exc:
            return self._bad(f"from {peer!r}: {exc.reason}", now)
        return self.on_message(peer, msg, now)

    def on_message(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        if msg.type == "hello":
            return self._stamped(self._on_hello(agent_id, msg, now))
        agent = self.agents.get(agent_id)
        if agent is None:
            return self._bad(f"{msg.type!r} from unknown peer {agent_id!r}", now)
        agent.last_seen = now
        handler = self._handlers.get(msg.type)
        if handler is None:
            return self._bad(f"{agent.label()} sent {msg.type!r}, which agents never send", now)
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
        if self.phase is Phase.WAITING and now - self.created > self.timing.wait_timeout:
            synced = sum(1 for a in self.agents.values() if a.state is AgentState.SYNCED)
            actions.append(
                self._finish(
                    False,
                    f"only {synced} of {self.expect} agents connected within {self.timing.wait_timeout:g}s "
                    "(start them with: farm agent --connect ENDPOINT)",
                    2,
                )
            )
        elif self.phase is Phase.PREPARING and now - self.preparing_since > self.timing.wait_timeout:
            waiting = [a.label() for a in self.members.used() if a.state is not AgentState.PREPARED]
            actions.append(self._finish(False, f"no answer to prepare from {', '.join(waiting)}", 2))
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
        used = len(self.members.used())
        joining = self.phase is Phase.RUNNING and self.run.settings.late_join and not self.cut
        spare = not joining and (self.phase is not Phase.WAITING or used >= self.expect)
        if spare and self.members.spares() >= MAX_SPARES:
            return self._refuse_stranger(agent_id, f"{MAX_SPARES} spare agents are connected already", None)
        return self.members.add(agent_id, msg.record, now, spare=spare, joining=joining)

    def _on_pong(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        synced, actions = self.members.pong(agent, msg["t0"], msg["t1"], msg["t2"], now)
        if not synced:
            return actions
        if agent.joining:
            return [self.planner.prepare(agent, now)] if self.phase is Phase.RUNNING else []
        used = self.members.used()
        if self.phase is not Phase.WAITING or len(used) < self.expect:
            return []
        if any(a.state is not AgentState.SYNCED for a in used):
            return []
        self.phase = Phase.PREPARING
        self.preparing_since = now
        for i, a in enumerate(used):
            a.index = i
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
        if self.phase is Phase.WAITING or agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return [Log("warning", f"{agent.label()} dropped before the run: {why}")]
        if agent.joining and agent.shard is None:  # a late agent that never got a share
            agent.state = AgentState.SPARE
            return [Log("warning", f"{agent.label()} gone before it joined: {why}")]
        agent.state = AgentState.LOST
        agent.lost_at = now
        agent.returned = False
        actions: list[Action] = [Log("warning", f"{agent.label()} lost: {why}"), *self.dealing.lost(agent)]
        if self.phase is Phase.PREPARING:
            actions.append(self._finish(False, f"{agent.label()} was lost while preparing: {why}", 1))
        elif self.phase is Phase.RUNNING:
            policy = self.run.settings.on_agent_loss
            if rebalance and policy == "abort":
                actions += self.planner.stop(list(self.agents.values()), now, abort=True, at_s=None)
                actions.append(self._finish(False, f"{agent.label()} lost ({why}): run aborted", 1))
                return actions
            if rebalance and policy == "rebalance":
                actions += self.planner.rebalance(agent, self.members.running(), now)
            if rebalance and (agent.share_ends_s is not None or self.dealing.dealers):
                # if it can still hear us, it stops where its share moved (its items went to others: now)
                actions += self.planner.stop_lost(agent, at_once=bool(self.dealing.dealers))
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
            return self._bad(f"{agent.label()} sent window seq {msg['seq']}, beyond any this run can have", now)
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
            if self._stopped_itself(agent):
                # It stopped on its own (its user, or an error): the others take its share.
                why = (agent.done.error if agent.done else None) or "stopped before the end of the run"
                actions.append(Log("warning", f"{agent.label()} {why}"))
                if self.run.settings.on_agent_loss == "rebalance":
                    actions += self.planner.rebalance(agent, self.members.running(), now)
        return actions + self._maybe_finish(now)

    def _stopped_itself(self, agent: AgentRecord) -> bool:
        """``agent`` stopped before its load's end where nobody told it to (its user, an error)."""
        done = agent.done
        if done is None or self.cut:
            return False
        if done.error is not None or len(done.scenarios) != len(self.run):
            return done.stopped_early
        return any(s.stopped_early for i, s in enumerate(done.scenarios) if i not in self.planner.stops)

    def _maybe_finish(self, now: float) -> list[Action]:
        if self.phase is not Phase.RUNNING:
            return []
        used = self.members.used()
        if all(self.intake.settled(a) for a in used):
            lost = [a for a in used if a.state is AgentState.LOST]
            if self.intake.aborted:
                return [self._finish(False, "aborted: calls in flight were canceled", 1)]
            if lost:
                return [self._finish(False, f"{len(lost)} of {len(used)} agents lost", 1)]
            return [self._finish(True, "", 0)]
        if now > self.intake.deadline:
            actions: list[Action] = []
            for a in used:
                if a.state not in (AgentState.DONE, AgentState.LEFT, AgentState.LOST):
                    actions += self._lose(a, now, "did not finish in time", rebalance=False, settle=False)
                a.returned = False  # stop waiting for a lost agent's last windows
            return actions + self._maybe_finish(now)
        return []

    # -- work items -----------------------------------------------------------------------------

    def _on_want(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        index = msg["sc"]
        deal = agent.state is AgentState.RUNNING and self.phase is Phase.RUNNING and index not in self.planner.stops
        actions = self.dealing.want(agent, index, msg["credit"], msg.get("fin", []), now, deal=deal)
        return actions + self._when_dry(now)

    def _when_dry(self, now: float) -> list[Action]:
        """Scenarios whose items are all done stop (a drain: its work is done; rate mode: its
        feed ran dry), at one instant on every agent."""
        if self.phase is not Phase.RUNNING or self.start_at is None:
            return []
        actions: list[Action] = []
        for index in self.dealing.newly_dry(max(0.0, now - self.start_at)):
            if self.cut or index in self.planner.stops:
                continue
            c = self.run.scenarios[index]
            what = "every item is done" if c.load is not None and c.load.needs_items else "the feed ran dry"
            at_s = self.planner.stop_at(self.members.used(), now)
            actions.append(Log("info", f"scenario {c.name!r}: {what} at {self.dealing.dry_s[index]:.2f} s: "
                                       "stopping it"))  # fmt: skip
            actions += self.planner.stop(list(self.agents.values()), now, abort=False, at_s=at_s, scenario=index)
        if actions and len(self.planner.stops) == len(self.run):
            self.intake.stopping(now, self.run, abort=False)
        return actions

    # -- strangers and bad frames -----------------------------------------------------------------

    def _refuse_stranger(self, peer: str, reason: str, version: Any) -> list[Action]:
        """Tell ``peer`` why it is turned away, in the envelope every version reads; log it
        once per peer."""
        actions: list[Action] = [SendFrame(peer, refusal(reason, peer_version=version, package=self.package))]
        if peer not in self._refused:
            if len(self._refused) >= _STRANGERS:
                self._refused.clear()
            self._refused.add(peer)
            actions.append(Log("error", f"refused {peer!r}: {reason}"))
        self.bad_frames += 1
        return actions

    def _bad(self, reason: str, now: float) -> list[Action]:
        """Count a dropped frame; log at most once per ``log_every`` seconds."""
        self.bad_frames += 1
        self._bad_since_log += 1
        if now - self._bad_logged_at < self.timing.log_every:
            return []
        count, self._bad_since_log, self._bad_logged_at = self._bad_since_log, 0, now
        return [Log("warning", f"coordinator dropped {count} bad frame(s); last: {reason}")]

    def _finish(self, ok: bool, reason: str, status: int, kind: str = "", error: str = "") -> Finish:
        self.phase = Phase.FINISHED
        self.finished = Finish(ok, reason, status, kind, error or reason)
        return self.finished
