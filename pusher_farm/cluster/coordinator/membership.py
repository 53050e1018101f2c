"""Who is in the farm: one record per agent, its state, its clock and its liveness.

Agents are known by their transport identity. Their clock offset is measured NTP-style by the
coordinator's pings: of a few round trips the fastest wins (its offset has the least error).
``Membership`` takes hellos (in the run, joining it, or kept spare), measures clocks, answers
heartbeats and says which agents fell silent; what a loss means for the run is the router's.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Container
from dataclasses import dataclass, field

from pusher_farm.cluster.coordinator.actions import Action, Log, Send
from pusher_farm.cluster.coordinator.ledger import Ledger
from pusher_farm.cluster.protocol.records import Done, Hello
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.shard import Shard

__all__ = ["MAX_SPARES", "WATCHED", "AgentRecord", "AgentState", "Membership", "clock_sample"]


class AgentState(enum.Enum):
    SYNCING = "syncing"  # said hello, clock being measured
    SYNCED = "synced"
    PREPARED = "prepared"  # target resolved on its host
    RUNNING = "running"
    DONE = "done"  # said done and every window it counted is in
    LEFT = "left"  # done, then said bye: gone as it should be
    LOST = "lost"  # silent past the timeout, or gone before it was done
    SPARE = "spare"  # connected beyond the expected number, or too late: not in this run


#: states whose silence makes an agent lost
WATCHED = frozenset({AgentState.SYNCING, AgentState.SYNCED, AgentState.PREPARED, AgentState.RUNNING})
#: states of agents no longer in the run's way (nothing more is waited for from them)
GONE = frozenset({AgentState.LOST, AgentState.LEFT, AgentState.SPARE})

#: round-trip samples kept per agent (the fastest wins; a flood of pongs cannot grow memory)
_SAMPLES = 16
#: the most agents kept spare (connected but not in the run); more are refused
MAX_SPARES = 1_000


def clock_sample(t0: float, t1: float, t2: float, now: float) -> tuple[float, float] | None:
    """(round trip, agent clock - coordinator clock) of a ping sent at ``t0``, received by the
    agent at ``t1``, answered at ``t2`` and back at ``now``; None when the times cannot be."""
    if not (t0 <= now and t1 <= t2):
        return None
    rtt = (now - t0) - (t2 - t1)
    if rtt < 0:
        return None
    return rtt, ((t1 - t0) + (t2 - now)) / 2


@dataclass
class AgentRecord:
    id: str
    hello: Hello
    state: AgentState
    joined: float
    last_seen: float
    last_sent: float = -1e18
    index: int = -1
    share: float = 0.0
    #: the slots and members this agent runs under the current plan epoch
    shard: Shard | None = None
    #: connected after the run started (late join)
    joining: bool = False
    #: lost, then reconnected: its remaining windows are awaited (until the deadline)
    returned: bool = False
    #: the instant (seconds from the start) its share moved to the others (it must stop there)
    share_ends_s: float | None = None
    told_to_stop: bool = False
    samples: list[tuple[float, float]] = field(default_factory=list)  # (rtt, offset)
    pings_sent: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    #: the end of the latest window received, in seconds from the start
    reported_until_s: float = 0.0
    #: windows it sent that were not valid (acknowledged, never merged)
    rejected: int = 0
    #: why it refused the run, and that error's kind
    error: str = ""
    error_kind: str = ""
    lost_at: float | None = None
    #: its CPU (percent of a core), as its latest heartbeat said
    cpu: float | None = None
    #: its done record, once it said done
    done: Done | None = None

    @property
    def name(self) -> str:
        return self.hello.name

    @property
    def host(self) -> str:
        return self.hello.host

    @property
    def capacity(self) -> float:
        return self.hello.capacity

    @property
    def offset(self) -> float:
        """agent clock - coordinator clock, from the ping with the smallest round trip."""
        return min(self.samples)[1] if self.samples else 0.0

    @property
    def rtt(self) -> float:
        return min(self.samples)[0] if self.samples else math.nan

    def add_sample(self, rtt: float, offset: float) -> None:
        self.samples.append((rtt, offset))
        if len(self.samples) > _SAMPLES:
            self.samples = sorted(self.samples)[: _SAMPLES // 2]

    @property
    def stopped_early(self) -> bool:
        return self.done is not None and self.done.stopped_early

    def stopped_itself(self, stopped: Container[int], scenarios: int, *, cut: bool) -> bool:
        """It stopped before its load's end where nobody told it to (its user, an error): in a
        scenario not in ``stopped`` (those the coordinator stopped), of a run not ``cut``."""
        done = self.done
        if done is None or cut:
            return False
        if done.error is not None or len(done.scenarios) != scenarios:
            return done.stopped_early
        return any(s.stopped_early for i, s in enumerate(done.scenarios) if i not in stopped)

    @property
    def stopped_s(self) -> float | None:
        """When it said it stopped early (None: it did not, or has not said done)."""
        return None if self.done is None else self.done.stopped_s

    def label(self) -> str:
        return f"agent {self.name!r} (host {self.host}, pid {self.hello.pid})"


class Membership:
    """The agents of one coordinator (see the module docstring)."""

    def __init__(self, expect: int, timing: Timing, package: str, now: float = 0.0) -> None:
        self.expect = expect
        self.timing = timing
        self.package = package
        self.agents: dict[str, AgentRecord] = {}
        self._ping_id = 0
        #: when the wait for agents began, and the wait for their prepared answers
        self.created = self.preparing_since = now

    def used(self) -> list[AgentRecord]:
        """The agents of this run (lost ones included), in the order they joined."""
        return [a for a in self.agents.values() if a.state is not AgentState.SPARE]

    def running(self) -> list[AgentRecord]:
        return [a for a in self.agents.values() if a.state is AgentState.RUNNING]

    def all_synced(self) -> bool:
        """Every expected agent is here with its clock measured."""
        used = self.used()
        return len(used) >= self.expect and all(a.state is AgentState.SYNCED for a in used)

    def preparing(self, now: float) -> None:
        """The run's agents are asked to prepare: each gets its place in the run."""
        self.preparing_since = now
        for i, a in enumerate(self.used()):
            a.index = i

    def stalled(self, now: float, *, preparing: bool) -> str:
        """Why the run cannot start (the wait for agents, or their answers, ran out), or ""."""
        if not preparing and now - self.created > self.timing.wait_timeout:
            synced = sum(1 for a in self.agents.values() if a.state is AgentState.SYNCED)
            return (f"only {synced} of {self.expect} agents connected within {self.timing.wait_timeout:g}s (start "
                    "them with: farm agent --connect ENDPOINT)")  # fmt: skip
        if preparing and now - self.preparing_since > self.timing.wait_timeout:
            waiting = [a.label() for a in self.used() if a.state is not AgentState.PREPARED]
            return f"no answer to prepare from {', '.join(waiting)}"
        return ""

    def welcome(self, agent_id: str) -> Send:
        fields = {"agent": agent_id, "package": self.package, "heartbeat": self.timing.heartbeat,
                  "lease": self.timing.lease}  # fmt: skip
        return Send(agent_id, "welcome", fields)

    def add(self, agent_id: str, hello: Hello, now: float, *, waiting: bool, joining: bool) -> list[Action] | None:
        """A new agent said hello: in the run (its clock measured at once), ``joining`` it
        (a running run takes late agents), or spare (beyond the expected number, or too late);
        None when too many are spare already (it is refused)."""
        spare = not joining and (not waiting or len(self.used()) >= self.expect)
        if spare and sum(1 for a in self.agents.values() if a.state is AgentState.SPARE) >= MAX_SPARES:
            return None
        agent = AgentRecord(id=agent_id, hello=hello, state=AgentState.SPARE if spare else AgentState.SYNCING,
                            joined=now, last_seen=now, last_sent=now, joining=joining)  # fmt: skip
        used = len(self.used())
        self.agents[agent_id] = agent
        actions: list[Action] = [self.welcome(agent_id)]
        if hello.package != self.package:
            actions.append(Log("info", f"{agent.label()} runs pusher-farm {hello.package}, this coordinator "
                                       f"{self.package}"))  # fmt: skip
        if spare:
            actions.append(Log("info", f"{agent.label()} connected; {self.expect} agents already: kept spare"))
            return actions
        if joining:
            actions.append(Log("info", f"{agent.label()} connected mid-run: it joins from the next epoch"))
        else:
            actions.append(Log("info", f"{agent.label()} connected ({used + 1}/{self.expect})"))
        actions.append(self.ping(agent, now))
        return actions

    def back(self, agent: AgentRecord, now: float, running: bool) -> list[Action]:
        """A known agent said hello again (a fresh socket after a silence). A lost one gets no
        share back in this run, but what it measured before it stopped is welcome: it re-sends
        its unacknowledged windows and they are merged, each exactly once."""
        agent.last_seen = agent.last_sent = now
        actions: list[Action] = [self.welcome(agent.id)]
        if agent.state is AgentState.LOST and running and not agent.returned:
            agent.returned = True  # the run now also waits for what it still has to send
            actions.append(Log("info", f"{agent.label()} is back: taking the windows it kept"))
        return actions

    def lose(self, agent: AgentRecord, now: float, why: str, *, waiting: bool) -> tuple[bool, list[Action]]:
        """``agent`` is gone: before the run (``waiting``) or kept spare it is dropped, a late
        agent that never got a share goes back to spare; else it is lost: (whether it was
        lost, the actions)."""
        if waiting or agent.state is AgentState.SPARE:
            del self.agents[agent.id]
            return False, [Log("warning", f"{agent.label()} dropped before the run: {why}")]
        if agent.joining and agent.shard is None:
            agent.state = AgentState.SPARE
            return False, [Log("warning", f"{agent.label()} gone before it joined: {why}")]
        agent.state = AgentState.LOST
        agent.lost_at = now
        agent.returned = False
        return True, [Log("warning", f"{agent.label()} lost: {why}")]

    def ping(self, agent: AgentRecord, now: float) -> Send:
        self._ping_id += 1
        agent.pings_sent += 1
        agent.last_sent = now
        return Send(agent.id, "ping", {"id": self._ping_id, "t0": now})

    def pong(self, agent: AgentRecord, t0: float, t1: float, t2: float, now: float) -> tuple[bool, list[Action]]:
        """A pong: (whether this one finished measuring ``agent``'s clock, the actions)."""
        sample = clock_sample(t0, t1, t2, now)
        if sample is None:
            return False, [Log("warning", f"{agent.label()}: inconsistent pong dropped")]
        agent.add_sample(*sample)
        if agent.state is not AgentState.SYNCING:
            return False, []
        if len(agent.samples) < self.timing.sync_pings:
            return False, [self.ping(agent, now)]
        agent.state = AgentState.SYNCED
        return True, []

    def beat(self, now: float) -> tuple[list[Action], list[AgentRecord], list[AgentRecord]]:
        """Heartbeats for whoever heard nothing else from us lately (an ack is as good), and
        who fell silent: (actions, agents to lose, lost agents that came back and went again)."""
        actions: list[Action] = []
        silent_watched: list[AgentRecord] = []
        gone_again: list[AgentRecord] = []
        for agent in list(self.agents.values()):
            connected = agent.state not in (AgentState.LOST, AgentState.LEFT) or agent.returned
            if connected and now - agent.last_sent >= self.timing.heartbeat:
                agent.last_sent = now
                actions.append(Send(agent.id, "heartbeat", {}))
            if now - agent.last_seen <= self.timing.agent_timeout:
                continue
            if agent.state in WATCHED:
                silent_watched.append(agent)
            elif agent.state is AgentState.SPARE:
                del self.agents[agent.id]  # a spare that left: forget it
            elif agent.returned:  # a lost agent that came back and went again
                agent.returned = False
                gone_again.append(agent)
        return actions, silent_watched, gone_again
