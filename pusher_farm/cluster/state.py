"""The coordinator's decisions as a state machine with no I/O.

It takes events (a frame from a peer, a clock tick, the user's stop) with the time they
happened and returns actions (send a message, accept a window, log, finish the run). The
drivers only move frames, so every decision here is tested without sockets and without
sleeping (``transport_inproc`` and a fake clock).

Phases: WAITING for the expected agents (each measures its clock offset with a few pings as
soon as it says hello) → PREPARING (each agent resolves the target on its own host: ready or
refuse) → RUNNING (plans sent with an absolute start time; windows acknowledged and
deduplicated; heartbeats both ways) → FINISHED.

The handler table is split by concern: membership and liveness here, the plan (prepare,
start, epochs) in ``state_plan``, windows and the slot accounting in ``state_reports``.
Nothing a peer sends is fatal: every frame is decoded and checked (``protocol``) before any
handler sees it; what fails is counted, logged at most every few seconds, and answered with a
refusal where the peer should learn why (a foreign version, an invalid hello).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

from pusher_farm._version import __version__
from pusher_farm.cluster.actions import Action, Finish, Log, Phase, Send, SendFrame
from pusher_farm.cluster.members import WATCHED, AgentRecord, AgentState, clock_sample
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.protocol import (
    PROTOCOL_VERSION,
    InvalidMessage,
    Message,
    VersionMismatch,
    decode,
    refusal,
)
from pusher_farm.cluster.state_items import ItemsMixin
from pusher_farm.cluster.state_plan import PlanMixin
from pusher_farm.cluster.state_reports import ReportMixin
from pusher_farm.cluster.state_scenarios import ScenarioPlanMixin
from pusher_farm.cluster.timing import Timing
from pusher_farm.errors import InvalidOption, ProtocolError
from pusher_farm.items.dealer import Dealer

__all__ = ["CoordinatorState", "Timing"]  # Timing re-exported: where users looked for it


Handler = Callable[[AgentRecord, Message, float], list[Action]]

#: the most strangers whose refusal is remembered (to log each once)
_STRANGERS = 10_000
#: the most agents kept spare (connected but not in the run); more are refused
MAX_SPARES = 1_000
#: the longest peer identity accepted (a ZeroMQ identity is at most 255 bytes; as text, with
#: undecodable bytes escaped, up to four times that)
MAX_IDENTITY = 1024


class CoordinatorState(PlanMixin, ScenarioPlanMixin, ReportMixin, ItemsMixin):
    def __init__(
        self,
        spec: RunSpec,
        expect: int,
        timing: Timing | None = None,
        now: float = 0.0,
        package: str = __version__,
        dealer: Dealer | None = None,
    ) -> None:
        if expect < 1:
            raise InvalidOption("expect at least one agent")
        if not spec.sharded and len(spec.configs) != expect:
            raise InvalidOption("one target per agent needs exactly as many agents as targets")
        self.spec = spec
        self.expect = expect
        self.timing = timing or Timing()
        self.package = package
        self.phase = Phase.WAITING
        self.run_id = uuid.uuid4().hex[:12]
        self.agents: dict[str, AgentRecord] = {}
        self.created = now
        self.preparing_since = now
        self.start_at: float | None = None
        self.finished: Finish | None = None
        #: frames dropped because they were not valid messages (whoever sent them)
        self.bad_frames = 0
        self._last_beat = now
        self._now = now
        self._ping_id = 0
        self._bad_since_log = 0
        self._bad_logged_at = -math.inf
        self._refused: set[str] = set()
        self._handlers: dict[str, Handler] = {
            "pong": self._on_pong,
            "heartbeat": self._on_heartbeat,
            "bye": self._on_bye,
            **self.plan_handlers(),
            **self.report_handlers(),
            **self.items_handlers(),
        }
        self.init_plan()
        self.init_scenario_plan()
        self.init_reports()
        self.init_items(dealer)

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
            if msg.type not in ("window", "done", "heartbeat", "pong", "bye", "want"):
                return [Log("info", f"{agent.label()} was lost: its {msg.type!r} is ignored for this run")]
            moved = agent.share_ends is not None or agent.share_ends_s is not None
            if not agent.told_to_stop and (moved or self.spec.drain):
                agent.told_to_stop = True  # it is talking while lost: make sure it stops
                return [*self._stop_lost(agent), *handler(agent, msg, now)]
        return self._stamped(handler(agent, msg, now))

    def on_tick(self, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        actions: list[Action] = []
        if now - self._last_beat >= min(self.timing.heartbeat / 4, 0.25):
            # Heartbeat whoever heard nothing else from us lately (an ack is as good), and look
            # for silent agents: a few times per heartbeat, not on every tick.
            self._last_beat = now
            for agent in list(self.agents.values()):
                connected = agent.state not in (AgentState.LOST, AgentState.LEFT) or agent.returned
                if connected and now - agent.last_sent >= self.timing.heartbeat:
                    agent.last_sent = now
                    actions.append(Send(agent.id, "heartbeat", {}))
                silent = now - agent.last_seen
                if silent <= self.timing.agent_timeout:
                    continue
                if agent.state in WATCHED:
                    actions += self._lose(agent, now, f"silent for {silent:.1f}s")
                elif agent.state is AgentState.SPARE:
                    del self.agents[agent.id]  # a spare that left: forget it
                elif agent.returned:  # a lost agent that came back and went again
                    agent.returned = False
                    if self.phase is Phase.RUNNING:
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
            waiting = [a.label() for a in self._used() if a.state is not AgentState.PREPARED]
            actions.append(self._finish(False, f"no answer to prepare from {', '.join(waiting)}", 2))
        elif self.phase is Phase.RUNNING:
            actions += self.tick_reports(now)
        return self._stamped(actions)

    def stop(self, now: float, *, abort: bool = False) -> list[Action]:
        """The user asked to stop (Ctrl-C): agents stop scheduling and report what ran; with
        ``abort`` they also cancel their calls in flight, and the report comes within
        ``abort_grace`` with what has arrived by then."""
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        if self.phase is not Phase.RUNNING:
            return [*self._stop_all(abort=True), self._finish(False, "stopped before the run started", 1)]
        return self._stamped(self.stop_reports(now, abort=abort))

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

    # -- membership -------------------------------------------------------------------------

    def _welcome(self, agent_id: str) -> Send:
        fields = {
            "agent": agent_id,
            "package": self.package,
            "heartbeat": self.timing.heartbeat,
            "lease": self.timing.lease,
        }
        return Send(agent_id, "welcome", fields)

    def _on_hello(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        existing = self.agents.get(agent_id)
        if existing is not None:
            # A known agent reconnecting (a fresh socket after a silence). A lost one gets no
            # share back in this run, but what it measured before it stopped is welcome: it
            # re-sends its unacknowledged windows and they are merged, each exactly once.
            existing.last_seen = existing.last_sent = now
            actions: list[Action] = [self._welcome(agent_id)]
            if existing.state is AgentState.LOST and self.phase is Phase.RUNNING and not existing.returned:
                existing.returned = True  # the run now also waits for what it still has to send
                actions.append(Log("info", f"{existing.label()} is back: taking the windows it kept"))
            return actions
        used = len(self._used())
        joining = self.phase is Phase.RUNNING and self.spec.policy.late_join and self.spec.sharded and not self.cut
        spare = not joining and (self.phase is not Phase.WAITING or used >= self.expect)
        if spare and sum(1 for a in self.agents.values() if a.state is AgentState.SPARE) >= MAX_SPARES:
            return self._refuse_stranger(agent_id, f"{MAX_SPARES} spare agents are connected already", None)
        agent = AgentRecord(
            id=agent_id,
            name=msg["name"],
            host=msg["host"],
            pid=msg["pid"],
            capacity=msg["capacity"],
            cpus=msg["cpus"],
            package=msg["package"],
            python=msg.get("python", ""),
            deps=dict(msg.get("deps", {})),
            state=AgentState.SPARE if spare else AgentState.SYNCING,
            joined=now,
            last_seen=now,
            last_sent=now,
        )
        self.agents[agent_id] = agent
        actions = [self._welcome(agent_id)]
        if msg["package"] != self.package:
            actions.append(
                Log("info", f"{agent.label()} runs pusher-farm {msg['package']}, this coordinator {self.package}")
            )
        if spare:
            actions.append(Log("info", f"{agent.label()} connected; {self.expect} agents already: kept spare"))
            return actions
        if joining:
            agent.joining = True
            actions.append(Log("info", f"{agent.label()} connected mid-run: it joins from the next epoch"))
        else:
            actions.append(Log("info", f"{agent.label()} connected ({used + 1}/{self.expect})"))
        actions.append(self._ping(agent, now))
        return actions

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

    def _ping(self, agent: AgentRecord, now: float) -> Send:
        self._ping_id += 1
        agent.pings_sent += 1
        agent.last_sent = now
        return Send(agent.id, "ping", {"id": self._ping_id, "t0": now})

    def _on_pong(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        sample = clock_sample(msg["t0"], msg["t1"], msg["t2"], now)
        if sample is None:
            return [Log("warning", f"{agent.label()}: inconsistent pong dropped")]
        agent.add_sample(*sample)
        if agent.state is not AgentState.SYNCING:
            return []
        if len(agent.samples) < self.timing.sync_pings:
            return [self._ping(agent, now)]
        agent.state = AgentState.SYNCED
        return self.synced(agent, now)

    def _on_heartbeat(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        agent.stats.update(msg.body)
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

    def _used(self) -> list[AgentRecord]:
        """The agents of this run (lost ones included), in the order they joined."""
        return [a for a in self.agents.values() if a.state is not AgentState.SPARE]

    def _lose(
        self, agent: AgentRecord, now: float, why: str, *, rebalance: bool = True, settle: bool = True
    ) -> list[Action]:
        """``agent`` is gone: before the run it is dropped; in it, it is lost (its share moves
        by the run's policy); ``settle``: see at once whether the run is over."""
        if self.phase is Phase.WAITING or agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return [Log("warning", f"{agent.label()} dropped before the run: {why}")]
        if agent.joining and agent.shard is None:  # a late agent that never got a share
            agent.state = AgentState.SPARE
            return [Log("warning", f"{agent.label()} gone before it joined: {why}")]
        agent.state = AgentState.LOST
        agent.lost_at = now
        agent.returned = False
        actions: list[Action] = [Log("warning", f"{agent.label()} lost: {why}")]
        actions += self.items_lost(agent)
        if self.phase is Phase.PREPARING:
            actions.append(self._finish(False, f"{agent.label()} was lost while preparing: {why}", 1))
        elif self.phase is Phase.RUNNING:
            if rebalance:
                policy = self.spec.policy.on_agent_loss
                if policy == "abort":
                    actions += self._stop_all(abort=True)
                    actions.append(self._finish(False, f"{agent.label()} lost ({why}): run aborted", 1))
                    return actions
                if policy == "rebalance" and self.book is not None:
                    actions += self.rebalance(agent, now)
                    actions += self._stop_lost(agent)
                elif policy == "rebalance" and self.shares_users:
                    actions += self.rebalance_scenarios(agent, now)
                    actions += self._stop_lost(agent)
                elif self.spec.drain:  # its items went to others: it must not work on them too
                    agent.told_to_stop = True
                    actions += self._stop_lost(agent)
            if settle:
                actions += self._maybe_finish(now)
        return actions

    def _finish(self, ok: bool, reason: str, status: int, kind: str = "", error: str = "") -> Finish:
        self.phase = Phase.FINISHED
        self.finished = Finish(ok, reason, status, kind, error or reason)
        return self.finished
