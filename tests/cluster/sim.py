"""A whole farm in one process on a fake clock: the real coordinator and agent drivers and
state machines over the in-process transport, with a simulated executor.

``SimRunner`` plays the core executor for an agent: it fires the slots of its plan as the
clock passes their due times (each call succeeds at once), honouring epochs, halts and the
lease exactly as the executor does (same ``plan_at``), closes a window at each window end and
says done at the end. It records every slot it fired, so a test can check that every global
slot fired exactly once. Everything else (frames, checks, decisions, acks, re-sends) is the
product's own code.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from pusher_farm.cluster.agent import AgentDriver
from pusher_farm.cluster.agent_state import AgentMachine, AgentTiming
from pusher_farm.cluster.coordinator import Coordinator
from pusher_farm.cluster.plan import RunSpec
from pusher_farm.cluster.state import Timing
from pusher_farm.cluster.transport_inproc import Network
from pusher_farm.core.config import Config
from pusher_farm.core.executor import HALT, add_epoch, plan_at
from pusher_farm.core.schedule import Constant, slot_batches
from pusher_farm.core.window import Window

TIMING = Timing(heartbeat=1.0, agent_timeout=3.0, wait_timeout=10.0, sync_pings=3, start_lead=0.5, end_grace=1.0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def noop(ctx):
    return None


def spec(rate=200.0, seconds=20.0, **settings) -> RunSpec:
    profile = Constant(rate, seconds)
    return RunSpec((Config(target="noop", profile=profile, until=seconds, timeout=1.0, **settings),))


class SimRunner:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.plan = None
        self.report = None
        self.fired: list[int] = []
        self.lease_until = math.inf
        #: gossips its listeners could not take (said in its done)
        self.gossip_dropped = 0

    def launch(self, plan, target, report) -> None:
        self.plan, self.report = plan, report
        self.epochs = [(plan.first, plan.shard)]
        self.next_k = plan.first
        self.reached = None
        self.counts: Counter[int] = Counter()
        self.next_window = 0
        self.seq = 0
        self.stopped_s = None
        self.exhausted = False

    def replan(self, from_slot, shard) -> None:
        add_epoch(self.epochs, from_slot, shard)

    def halt(self, *, abort: bool, at_slot, at_s=None) -> None:
        if self.plan is None:
            return
        if at_slot is not None and not abort:
            self.replan(at_slot, HALT)
        else:
            self._stop(self.clock() - self.plan.local_start)

    def lease(self, until: float) -> None:
        self.lease_until = until

    def _stop(self, at_s: float) -> None:
        if self.stopped_s is None:
            self.stopped_s = max(at_s, 0.0)

    def advance(self) -> None:
        plan = self.plan
        if plan is None:
            return
        now = self.clock()
        if now > self.lease_until:
            self._stop(self.lease_until - plan.local_start)
        elapsed = now - plan.local_start
        horizon = elapsed if self.stopped_s is None else min(elapsed, self.stopped_s)
        while True:
            shard, boundary = plan_at(self.epochs, self.next_k)
            if shard is HALT:
                halt = min(f for f, s in self.epochs if s is HALT and f <= self.next_k)
                self.reached = halt if self.reached is None else max(self.reached, halt)
                self._stop(elapsed)
                break
            got = self._fire(shard, boundary, horizon)
            if got == "boundary":
                continue
            self.exhausted = got == "end"
            break
        window = plan.config.window
        finished = self.stopped_s is not None or self.exhausted
        last = math.floor(elapsed / window) - 1
        if finished:
            last = max(last, max(self.counts, default=-1))
        while self.next_window <= last:
            self._emit(self.next_window)
        if finished:
            self._done(elapsed)

    def _fire(self, shard, boundary, horizon) -> str:
        """Fire the slots of ``shard`` due before ``horizon``; why it stopped: the next epoch's
        ``boundary``, the ``time`` (later slots are not due yet) or the schedule's ``end``."""
        plan = self.plan
        for ks, ts in slot_batches(plan.profile, until=plan.config.until, shard=shard, first=self.next_k):
            for k, t in zip(ks, ts, strict=True):
                if k >= boundary:
                    self.next_k = max(self.next_k, int(boundary))
                    return "boundary"
                if t >= horizon:
                    return "time"
                self.fired.append(k)
                self.counts[int(t // plan.config.window)] += 1
                self.next_k = self.reached = k + 1
        if math.isinf(boundary):
            return "end"
        self.next_k = max(self.next_k, int(boundary))
        return "boundary"

    def _emit(self, i: int) -> None:
        window = self.plan.config.window
        n = self.counts.pop(i, 0)
        w = Window(i, i * window, window, started=n, succeeded=n)
        for h in (w.latency, w.service, w.lag):
            h.record_many(np.full(n, 1000 if h is not w.lag else 0))
        self.report("window", self.plan.run, {"seq": self.seq, "w": w.to_wire()})
        self.seq += 1
        self.next_window = i + 1

    def _done(self, elapsed: float) -> None:
        fields = {
            "stopped_early": self.stopped_s is not None,
            "sent_s": min(elapsed, self.stopped_s if self.stopped_s is not None else elapsed),
            "windows": self.seq,
            "gossip_dropped": self.gossip_dropped,
        }
        if self.reached is not None:
            fields["reach"] = self.reached
        if self.stopped_s is not None:
            fields["stopped_s"] = self.stopped_s
        self.report("done", self.plan.run, fields)
        self.report = None
        self.plan = None


class SimAgent:
    def __init__(self, farm: SimFarm, name: str, *, capacity: float = 1.0, once: bool = True, timing=None) -> None:
        self.name = name
        self.identity = f"{name}/sim"
        self.runner = SimRunner(farm.clock)
        self.machine = AgentMachine(
            name=name,
            host="sim",
            pid=len(farm.agents) + 1,
            capacity=capacity,
            cpus=2,
            resolve=lambda target, params: noop,
            connect="inproc://farm",
            once=once,
            timing=timing or AgentTiming(),
            now=farm.clock(),
        )
        self.driver = AgentDriver(self.machine, lambda: farm.net.link(self.identity), self.runner)
        self.driver.start(farm.clock())
        self.alive = True

    @property
    def status(self):
        return self.driver.status

    def step(self) -> None:
        if self.alive and self.driver.status is None:
            self.runner.advance()
            self.driver.step(self.runner.clock())


class SimFarm:
    """The coordinator of ``run`` and agents added with ``agent``; ``step`` moves the clock."""

    def __init__(self, run: RunSpec, expect: int, *, timing: Timing = TIMING, delay: float = 0.001) -> None:
        self.clock = Clock()
        self.net = Network(self.clock, delay=delay)
        self.coord = Coordinator(run, expect=expect, timing=timing, hub=self.net.hub(), clock=self.clock)
        self.agents: dict[str, SimAgent] = {}
        self.coordinator_alive = True

    def agent(self, name: str, **kw) -> SimAgent:
        a = self.agents[name] = SimAgent(self, name, **kw)
        return a

    def step(self, dt: float = 0.01) -> None:
        self.clock.now += dt
        for a in list(self.agents.values()):
            a.step()
        if self.coordinator_alive:
            self.coord.step(self.clock())

    def run_for(self, seconds: float, dt: float = 0.01) -> None:
        for _ in range(round(seconds / dt)):
            self.step(dt)

    def finish(self, limit: float = 120.0, dt: float = 0.01):
        """Step until the coordinator finishes (at most ``limit`` seconds), then the report."""
        for _ in range(round(limit / dt)):
            if self.coord.finish is not None:
                break
            self.step(dt)
        assert self.coord.finish is not None, "the run did not finish"
        self.coord.aggregator.release([], final=True)
        return self.coord.report(0.0)

    def started_at(self) -> float:
        return self.coord.state.start_at

    def at(self, seconds_into_run: float, dt: float = 0.01) -> None:
        """Step until ``seconds_into_run`` seconds after the run's start."""
        while self.coord.state.start_at is None or self.clock() < self.coord.state.start_at + seconds_into_run:
            self.step(dt)
