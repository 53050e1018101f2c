"""The coordinator's decisions as a state machine with no I/O.

It takes events (a decoded message from an agent, a clock tick) with the time they happened
and returns actions (send a message, accept a window, finish the run). The ZeroMQ layer only
moves messages, so every decision here is tested without sockets and without sleeping.

Phases: WAITING for the expected agents (each measures its clock offset with a few pings as
soon as it says hello) → PREPARING (each agent resolves the target on its own host: ready or
refuse) → RUNNING (plans sent with an absolute start time; windows acknowledged and deduplicated
by (agent, seq); heartbeats both ways) → FINISHED.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pusher_farm.cluster.plan import AgentPlan, RunSpec
from pusher_farm.cluster.protocol import Message
from pusher_farm.core.schedule import Shard

__all__ = [
    "Accept",
    "AgentRecord",
    "AgentState",
    "CoordinatorState",
    "Finish",
    "Log",
    "Phase",
    "Send",
    "Timing",
]


class Phase(enum.Enum):
    WAITING = "waiting"
    PREPARING = "preparing"
    RUNNING = "running"
    FINISHED = "finished"


class AgentState(enum.Enum):
    SYNCING = "syncing"  # said hello, clock being measured
    SYNCED = "synced"
    PREPARED = "prepared"  # target resolved on its host
    RUNNING = "running"
    DONE = "done"
    LOST = "lost"
    SPARE = "spare"  # connected beyond the expected number: not used in this run


@dataclass(frozen=True)
class Timing:
    """Every timing constant of the coordinator, so tests can run fast and exact."""

    heartbeat: float = 1.0
    agent_timeout: float = 3.0
    wait_timeout: float = 60.0
    sync_pings: int = 5
    start_lead: float = 0.5
    #: how long after the schedule's end (+ call timeout) to wait for agents' last windows
    end_grace: float = 5.0


@dataclass
class Send:
    agent: str
    type: str
    fields: dict[str, Any]


@dataclass
class Accept:
    """A new (not duplicate) window from an agent: hand it to the aggregator."""

    agent: str
    seq: int
    window: dict[str, Any]


@dataclass
class Log:
    level: str
    text: str


@dataclass
class Finish:
    ok: bool
    reason: str = ""
    #: exit status for the command line: 0 ran, 1 ran with lost agents or failures, 2 refused
    status: int = 0


Action = Send | Accept | Log | Finish

#: windows per cumulative ack while a run goes on (an agent keeps at most about this many)
ACK_EVERY = 8


@dataclass
class AgentRecord:
    id: str
    name: str
    host: str
    pid: int
    capacity: float
    cpus: int
    state: AgentState
    joined: float
    last_seen: float
    last_sent: float = -1e18
    index: int = -1
    share: float = 0.0
    #: the slots this agent fires under the current plan epoch (sharded runs)
    shard: Shard | None = None
    #: highest report window index received, and slots it owned that were never reported
    last_window: int = -1
    missed_slots: int = 0
    #: the slot from which a lost agent's share moved to the others
    missed_until: int | None = None
    #: connected after the run started (late join)
    joining: bool = False
    #: lost, then reconnected: its remaining windows are awaited (until the deadline)
    returned: bool = False
    samples: list[tuple[float, float]] = field(default_factory=list)  # (rtt, offset)
    pings_sent: int = 0
    seqs: set[int] = field(default_factory=set)
    #: every window seq up to this one is in; the last cumulative ack said up to ``acked``
    contiguous: int = -1
    acked: int = -1
    windows_expected: int | None = None
    stopped_early: bool = False
    error: str = ""
    lost_at: float | None = None
    #: what the agent last said of itself (heartbeat and done extras: cpu, sent_s, ...)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def offset(self) -> float:
        """agent clock - coordinator clock, from the ping with the smallest round trip."""
        return min(self.samples)[1] if self.samples else 0.0

    @property
    def rtt(self) -> float:
        return min(self.samples)[0] if self.samples else math.nan

    def label(self) -> str:
        return f"agent {self.name!r} (host {self.host}, pid {self.pid})"


class CoordinatorState:
    def __init__(self, spec: RunSpec, expect: int, timing: Timing | None = None, now: float = 0.0) -> None:
        if expect < 1:
            raise ValueError("expect at least one agent")
        if not spec.sharded and len(spec.tasks) != expect:
            raise ValueError("one task per agent needs exactly as many agents as tasks")
        self.spec = spec
        self.expect = expect
        self.timing = timing or Timing()
        self.phase = Phase.WAITING
        self.run_id = uuid.uuid4().hex[:12]
        self.agents: dict[str, AgentRecord] = {}
        self.created = now
        self.start_at: float | None = None
        self.finished: Finish | None = None
        #: plan epochs after the first: {"from_slot", "at_s", "agents", "reason"}
        self.epochs: list[dict[str, Any]] = []
        self.bad_frames = 0
        self._last_beat = now
        self._deadline_at: float | None = None
        self._now = now
        self._ping_id = 0
        self._handlers: dict[str, Callable[[AgentRecord, Message, float], list[Action]]] = {
            "pong": self._on_pong,
            "ready": self._on_ready,
            "refuse": self._on_refuse,
            "window": self._on_window,
            "done": self._on_done,
            "heartbeat": self._on_heartbeat,
            "bye": self._on_bye,
        }

    # -- events -----------------------------------------------------------------------------

    def on_message(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        if msg.type == "hello":
            return self._on_hello(agent_id, msg, now)
        agent = self.agents.get(agent_id)
        if agent is None:
            return [Log("debug", f"{msg.type} from unknown agent {agent_id!r} dropped")]
        agent.last_seen = now
        handler = self._handlers.get(msg.type)
        if handler is None:
            return [Log("warning", f"{agent.label()} sent {msg.type!r}, which agents never send: dropped")]
        if agent.state is AgentState.LOST and msg.type not in ("window", "done", "heartbeat", "pong"):
            return [Log("info", f"{agent.label()} was lost: its {msg.type!r} is ignored for this run")]
        return handler(agent, msg, now)

    def on_tick(self, now: float) -> list[Action]:
        self._now = now
        if self.phase is Phase.FINISHED:
            return []
        actions: list[Action] = []
        if now - self._last_beat >= min(self.timing.heartbeat / 4, 0.25):
            # Heartbeat whoever heard nothing else from us lately (an ack is as good), and look
            # for silent agents: a few times per heartbeat, not on every tick.
            self._last_beat = now
            for agent in self._live():
                if now - agent.last_sent >= self.timing.heartbeat:
                    agent.last_sent = now
                    actions.append(Send(agent.id, "heartbeat", {}))
                if now - agent.last_seen > self.timing.agent_timeout:
                    actions += self._lose(agent, now, f"silent for {now - agent.last_seen:.1f}s")
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
        elif self.phase is Phase.PREPARING and now - self.created > self.timing.wait_timeout:
            waiting = [a.label() for a in self._used() if a.state is not AgentState.PREPARED]
            actions.append(self._finish(False, f"no answer to prepare from {', '.join(waiting)}", 2))
        elif self.phase is Phase.RUNNING:
            deadline = self._deadline()
            if deadline is not None and now > deadline:  # done and lost are handled as they come
                actions += self._maybe_finish(now)
        return actions

    # -- handlers ---------------------------------------------------------------------------

    def _on_hello(self, agent_id: str, msg: Message, now: float) -> list[Action]:
        existing = self.agents.get(agent_id)
        if existing is not None:
            # A known agent reconnecting (a fresh socket after a silence). A lost one gets no
            # share back in this run, but what it measured before it stopped is welcome: it
            # re-sends its unacknowledged windows and they are merged, each exactly once.
            existing.last_seen = now
            actions: list[Action] = [Send(agent_id, "welcome", {"agent": agent_id})]
            if existing.state is AgentState.LOST and self.phase is Phase.RUNNING:
                existing.returned = True  # the run now also waits for what it still has to send
                actions.append(Log("info", f"{existing.label()} is back: taking the windows it kept"))
            return actions
        used = sum(1 for a in self.agents.values() if a.state is not AgentState.SPARE)
        joining = self.phase is Phase.RUNNING and self.spec.late_join and self.spec.sharded
        spare = not joining and (self.phase is not Phase.WAITING or used >= self.expect)
        agent = AgentRecord(
            id=agent_id,
            name=msg["name"],
            host=msg["host"],
            pid=msg["pid"],
            capacity=float(msg["capacity"]) if msg["capacity"] > 0 else 1.0,
            cpus=msg["cpus"],
            state=AgentState.SPARE if spare else AgentState.SYNCING,
            joined=now,
            last_seen=now,
        )
        self.agents[agent_id] = agent
        actions: list[Action] = [Send(agent_id, "welcome", {"agent": agent_id})]
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

    def _ping(self, agent: AgentRecord, now: float) -> Send:
        self._ping_id += 1
        agent.pings_sent += 1
        return Send(agent.id, "ping", {"id": self._ping_id, "t0": now})

    def _on_pong(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        t0, t1, t2 = float(msg["t0"]), float(msg["t1"]), float(msg["t2"])
        if not (t0 <= now and t2 >= t1):
            return [Log("warning", f"{agent.label()}: inconsistent pong dropped")]
        rtt = (now - t0) - (t2 - t1)
        offset = ((t1 - t0) + (t2 - now)) / 2
        agent.samples.append((rtt, offset))
        if agent.state is not AgentState.SYNCING:
            return []
        if len(agent.samples) < self.timing.sync_pings:
            return [self._ping(agent, now)]
        agent.state = AgentState.SYNCED
        if agent.joining:
            if self.phase is not Phase.RUNNING:
                return []
            task = self.spec.tasks[0]
            return [Send(agent.id, "prepare", {"run": self.run_id, "target": task.target, "params": dict(task.params)})]
        return self._maybe_prepare(now)

    def _maybe_prepare(self, now: float) -> list[Action]:
        used = self._used()
        if self.phase is not Phase.WAITING or len(used) < self.expect:
            return []
        if any(a.state is not AgentState.SYNCED for a in used):
            return []
        self.phase = Phase.PREPARING
        actions: list[Action] = []
        for i, agent in enumerate(used):
            agent.index = i
            task = self.spec.task_for(i)
            actions.append(
                Send(agent.id, "prepare", {"run": self.run_id, "target": task.target, "params": dict(task.params)})
            )
        return actions

    def _on_ready(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] == self.run_id and agent.joining and self.phase is Phase.RUNNING:
            agent.index = max(a.index for a in self.agents.values()) + 1
            return self._join(agent, now)
        if msg["run"] != self.run_id or self.phase is not Phase.PREPARING:
            return []
        agent.state = AgentState.PREPARED
        used = self._used()
        if any(a.state is not AgentState.PREPARED for a in used):
            return []
        return self._start(used, now)

    def _start(self, used: list[AgentRecord], now: float) -> list[Action]:
        self.phase = Phase.RUNNING
        rtts = [a.rtt for a in used if not math.isnan(a.rtt)]
        self.start_at = now + self.timing.start_lead + 2 * max(rtts, default=0.0)
        weights = tuple(a.capacity for a in used)
        actions: list[Action] = []
        for agent in used:
            agent.state = AgentState.RUNNING
            actions.append(self._start_message(agent, weights, agent.index, first=0))
        actions.append(Log("info", f"run {self.run_id} starts on {len(used)} agents"))
        return actions

    def _start_message(self, agent: AgentRecord, weights: tuple[float, ...], index: int, first: int) -> Send:
        """The ``start`` that gives ``agent`` its plan: slot ``index`` of ``weights`` from slot
        ``first`` on (sharded runs), or the whole of its own task."""
        assert self.start_at is not None
        task = self.spec.task_for(agent.index)
        assert task.profile is not None
        agent.share = agent.capacity / sum(weights) if self.spec.sharded else 1.0
        agent.shard = Shard(index, weights) if self.spec.sharded else None
        plan = AgentPlan(
            run=self.run_id,
            start_at=self.start_at,
            offset=agent.offset,
            stages=tuple(task.profile.stages),
            until=self.spec.until,
            index=index,
            weights=weights if self.spec.sharded else None,
            overtime=task.overtime,
            timeout=task.timeout,
            window=self.spec.window,
            spin=task.spin,
            batch=task.batch,
            first=first,
        )
        agent.last_sent = self._now
        return Send(agent.id, "start", {"run": self.run_id, "plan": plan.to_wire()})

    def _on_refuse(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        agent.error = msg["error"]
        if agent.joining:
            agent.state = AgentState.SPARE
            return [Log("warning", f"{agent.label()} cannot join: {msg['error']}")]
        return [
            *self._stop_all(abort=True),
            self._finish(False, f"{agent.label()} cannot run the target: {msg['error']}", 2),
        ]

    def _on_window(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        seq = msg["seq"]
        if msg["run"] != self.run_id:  # an old run's window: the agent may forget it
            return [Send(agent.id, "ack", {"run": msg["run"], "seq": seq})]
        if seq in agent.seqs or seq < 0:
            return self._ack(agent, force=True)  # a re-sent window we already have
        agent.seqs.add(seq)
        while agent.contiguous + 1 in agent.seqs:
            agent.contiguous += 1
        actions = self._ack(agent, force=agent.windows_expected is not None)
        index = msg["w"].get("i")
        if isinstance(index, int) and not isinstance(index, bool):
            agent.last_window = max(agent.last_window, index)
            if agent.state is AgentState.LOST and agent.missed_until is not None:
                agent.missed_slots = self._missed(agent, agent.missed_until)
        actions.insert(0, Accept(agent.id, seq, msg["w"]))
        actions += self._check_done(agent)
        return actions

    def _ack(self, agent: AgentRecord, *, force: bool) -> list[Action]:
        """A cumulative ack (every window up to ``contiguous``), sent every ``ACK_EVERY``
        windows, or at once when ``force``d (re-sent windows, the run's end), even if it says
        nothing new: the agent re-sends when an ack was lost with its connection. One ack
        message per window was the coordinator's largest cost at 1,000 agents. Agents keep what
        is not acknowledged and re-send it after a reconnect."""
        if agent.contiguous < 0:
            return []
        if not force and agent.contiguous - agent.acked < ACK_EVERY:
            return []
        agent.acked = agent.contiguous
        agent.last_sent = self._now
        return [Send(agent.id, "ack", {"run": self.run_id, "seq": agent.contiguous})]

    def _on_done(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if msg["run"] != self.run_id:
            return []
        agent.windows_expected = msg["windows"]
        agent.stopped_early = msg["stopped_early"]
        agent.stats.update({k: v for k, v in msg.body.items() if k not in ("v", "t", "run")})
        return self._ack(agent, force=True) + self._check_done(agent)

    def _check_done(self, agent: AgentRecord) -> list[Action]:
        """Once ``agent`` said done and every window it counted is in: it is done, and the run
        may be (a lost agent that came back settles the same way)."""
        if agent.windows_expected is None or len(agent.seqs) < agent.windows_expected:
            return []
        actions: list[Action] = []
        if agent.state is AgentState.RUNNING:
            agent.state = AgentState.DONE
            actions.append(Log("info", f"{agent.label()} done: {agent.windows_expected} windows"))
        return actions + self._maybe_finish(self._now)

    def _on_heartbeat(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        agent.stats.update({k: v for k, v in msg.body.items() if k not in ("v", "t")})
        return []

    def _on_bye(self, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        if agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return []
        if agent.state is AgentState.DONE:
            return []
        return self._lose(agent, now, "said bye")

    # -- helpers ----------------------------------------------------------------------------

    def _used(self) -> list[AgentRecord]:
        """The agents of this run (lost ones included), in the order they joined."""
        return [a for a in self.agents.values() if a.state is not AgentState.SPARE]

    def _live(self) -> list[AgentRecord]:
        return [a for a in self.agents.values() if a.state is not AgentState.LOST]

    def _lose(self, agent: AgentRecord, now: float, why: str, *, rebalance: bool = True) -> list[Action]:
        if self.phase is Phase.WAITING or agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return [Log("warning", f"{agent.label()} dropped before the run: {why}")]
        agent.state = AgentState.LOST
        agent.lost_at = now
        actions: list[Action] = [Log("warning", f"{agent.label()} lost: {why}")]
        if self.phase is Phase.PREPARING:
            actions.append(self._finish(False, f"{agent.label()} was lost while preparing: {why}", 1))
        elif self.phase is Phase.RUNNING and rebalance:
            policy = self.spec.on_agent_loss
            if policy == "abort":
                actions += self._stop_all(abort=True)
                actions.append(self._finish(False, f"{agent.label()} lost ({why}): run aborted", 1))
                return actions
            if policy == "rebalance" and self.spec.sharded:
                actions += self._rebalance(agent, now)
            actions += self._maybe_finish(now)
        elif self.phase is Phase.RUNNING:
            actions += self._maybe_finish(now)
        return actions

    def _epoch_start(self, live: list[AgentRecord], now: float) -> tuple[float, int] | None:
        """(seconds from the start, first slot) of a new plan epoch announced now, far enough
        ahead for every agent to hear of it; ``None`` when the schedule ends before it."""
        assert self.start_at is not None
        profile = self.spec.tasks[0].profile
        assert profile is not None
        length = profile.length(self.spec.until)
        rtts = [a.rtt for a in live if not math.isnan(a.rtt)]
        at = now + self.timing.start_lead + 2 * max(rtts, default=0.0) - self.start_at
        if at >= length:
            return None
        return at, profile.first_slot_at(at)

    def _reshard(
        self, live: list[AgentRecord], at: float, from_slot: int, reason: str, *, joining: AgentRecord | None = None
    ) -> list[Action]:
        """Share the slots from ``from_slot`` on among ``live`` by capacity: an ``epoch`` to
        every running agent, a ``start`` to one that joins now."""
        weights = tuple(a.capacity for a in live)
        actions: list[Action] = []
        for i, a in enumerate(live):
            if a is joining:
                actions.append(self._start_message(a, weights, i, first=from_slot))
                continue
            a.shard = Shard(i, weights)
            a.share = a.capacity / sum(weights)
            a.last_sent = self._now
            actions.append(
                Send(a.id, "epoch", {"run": self.run_id, "from_slot": from_slot, "weights": list(weights), "index": i})
            )
        self.epochs.append(
            {"from_slot": from_slot, "at_s": round(at, 3), "agents": [a.name for a in live], "reason": reason}
        )
        actions.append(
            Log("warning", f"{reason}: {len(live)} agents share the rate from slot {from_slot} (t={at:.2f}s)")
        )
        return actions

    def _rebalance(self, lost: AgentRecord, now: float) -> list[Action]:
        """Move the lost agent's share to the running agents from a new plan epoch, announced
        ahead: slots before it keep the old plan (the lost agent's unreported ones are missed)."""
        live = [a for a in self._used() if a.state is AgentState.RUNNING]
        epoch = self._epoch_start(live, now)
        profile = self.spec.tasks[0].profile
        assert profile is not None
        if lost.shard is not None:
            length = profile.length(self.spec.until)
            lost.missed_until = epoch[1] if epoch is not None else profile.slot_count(length)
            lost.missed_slots = self._missed(lost, lost.missed_until)
        if not live or epoch is None:
            return [Log("warning", f"{lost.label()} lost near the end: nothing left to rebalance")]
        return self._reshard(live, epoch[0], epoch[1], f"{lost.name} lost")

    def _join(self, agent: AgentRecord, now: float) -> list[Action]:
        """A late agent, prepared: it takes a share from the next epoch."""
        running = [a for a in self._used() if a.state is AgentState.RUNNING]
        epoch = self._epoch_start([*running, agent], now)
        if epoch is None:
            agent.state = AgentState.SPARE
            return [Log("info", f"{agent.label()} joined too late to take a share")]
        agent.state = AgentState.RUNNING
        return self._reshard([*running, agent], epoch[0], epoch[1], f"{agent.name} joined", joining=agent)

    def _missed(self, agent: AgentRecord, until_slot: int) -> int:
        """Slots ``agent`` owned after its last reported window, up to ``until_slot``."""
        profile = self.spec.tasks[0].profile
        assert profile is not None and agent.shard is not None
        first = profile.first_slot_at((agent.last_window + 1) * self.spec.window)
        return agent.shard.count(first, until_slot)

    def _settled(self, a: AgentRecord) -> bool:
        """Nothing more to wait for from ``a``: done, or lost and not back with windows to hand in."""
        if a.state is AgentState.DONE:
            return True
        if a.state is not AgentState.LOST:
            return False
        return not a.returned or (a.windows_expected is not None and len(a.seqs) >= a.windows_expected)

    def _maybe_finish(self, now: float) -> list[Action]:
        used = self._used()
        if all(self._settled(a) for a in used):
            lost = [a for a in used if a.state is AgentState.LOST]
            if lost:
                return [self._finish(False, f"{len(lost)} of {len(used)} agents lost", 1)]
            return [self._finish(True, "", 0)]
        deadline = self._deadline()
        if deadline is not None and now > deadline:
            actions: list[Action] = []
            for a in used:
                if a.state not in (AgentState.DONE, AgentState.LOST):
                    actions += self._lose(a, now, "did not finish in time", rebalance=False)
                a.returned = False  # stop waiting for a lost agent's last windows
            return actions + self._maybe_finish(now)
        return []

    def _deadline(self) -> float | None:
        if self.start_at is None:
            return None
        if self._deadline_at is None:
            self._deadline_at = self._compute_deadline()
        return self._deadline_at

    def _compute_deadline(self) -> float:
        lengths = []
        for i in range(len(self._used())):
            task = self.spec.task_for(i)
            assert task.profile is not None
            length = task.profile.length(self.spec.until)
            lengths.append(length + (task.timeout or 0.0))
        longest = max(lengths, default=0.0)
        if math.isinf(longest):
            return math.inf
        assert self.start_at is not None
        return self.start_at + longest + self.spec.window + self.timing.end_grace

    def _stop_all(self, *, abort: bool) -> list[Action]:
        return [Send(a.id, "stop", {"run": self.run_id, "abort": abort}) for a in self._live()]

    def stop(self, now: float, *, abort: bool = False) -> list[Action]:
        """The user asked to stop (Ctrl-C): agents stop scheduling and report what ran."""
        if self.phase is not Phase.RUNNING:
            return [*self._stop_all(abort=True), self._finish(False, "stopped before the run started", 1)]
        return self._stop_all(abort=abort)

    def _finish(self, ok: bool, reason: str, status: int) -> Finish:
        self.phase = Phase.FINISHED
        self.finished = Finish(ok, reason, status)
        return self.finished
