"""A whole farm in one process on a virtual clock: the product's coordinator, agents and
executors, over the in-process transport, with no sockets and no sleeping.

Everything is the product's own code: the coordinator's driver and state machine, each agent's
driver and state machine, and each agent's runner (``AgentRun``: one ``ScenarioRun`` with its
real executor, pacer, calls and recorder per scenario). Only the clock is virtual: one asyncio
loop whose time jumps to its next timer when nothing is ready (``VirtualLoop``), shared by the
network, the state machines and the executors. ``SimFarm.step(dt)`` runs the loop ``dt`` virtual
seconds (every executor fires what falls due), then steps every agent's driver and the
coordinator once, as their control threads would.

Targets are resolved here: ``noop`` records each call's slot (``SimRunner.fired``) and start
(``SimFarm.starts``); ``sleep``
awaits its ``ms`` on the virtual clock and counts its calls in flight across the whole farm, as
the target's own counter would (``SimFarm.in_flight``: now and the most at once, by scenario; and
``SimFarm.starts``: each call's start time and the calls in flight then, its own included), and
the items it worked on (``SimFarm.worked``); ``busy`` holds its agent's loop for its ``ms`` of
virtual time, as a CPU-bound call would. So a test checks that every global slot fired
exactly once, where each went, and how many calls a runtime change let run at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import selectors
from collections import defaultdict
from typing import Any, ClassVar

from pusher_farm.cluster.agent.agent import AgentDriver
from pusher_farm.cluster.agent.agent_state import AgentMachine
from pusher_farm.cluster.agent.runner import AgentRun
from pusher_farm.cluster.coordinator.coordinator import Coordinator
from pusher_farm.cluster.timing import AgentTiming, Timing
from pusher_farm.cluster.transport.inproc import Network
from pusher_farm.core.calls import inline
from pusher_farm.core.config import Config
from pusher_farm.core.load import Open
from pusher_farm.core.run import Run
from pusher_farm.core.schedule import Constant

TIMING = Timing(heartbeat=1.0, agent_timeout=3.0, wait_timeout=10.0, sync_pings=3, start_lead=0.5, end_grace=1.0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _VirtualSelector(selectors.BaseSelector):
    """A selector whose waits take no real time: when nothing is ready, the virtual clock
    jumps to the loop's next timer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.real = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self.real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self.real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only a thread can wake the loop
            return self.real.select(None)
        self.clock.now += timeout
        return []

    def get_map(self) -> Any:
        return self.real.get_map()

    def close(self) -> None:
        self.real.close()


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on ``clock``, which it moves forward itself (see the module docstring)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(selector=_VirtualSelector(clock))
        self._virtual = clock

    def time(self) -> float:
        return self._virtual.now


def spec(rate=200.0, seconds=20.0, **settings) -> Run:
    """A run of one open scenario of ``noop`` at ``rate`` for ``seconds``."""
    return Run.of([Config(target="noop", load=Open(Constant(rate, seconds)), timeout=1.0, **settings)])


def run_of(*scenarios: Config, **settings: Any) -> Run:
    return Run(Config(**settings), tuple(scenarios))


class SimRunner:
    """The agent's ``Runner`` for the simulator: each plan's ``AgentRun`` as a task on the
    farm's virtual loop (the product's ``ExecutorRunner`` hosts it on the main thread)."""

    def __init__(self, farm: SimFarm, name: str) -> None:
        self.farm = farm
        self.name = name
        self.current: AgentRun | None = None
        self.task: asyncio.Task[Any] | None = None
        #: global slots (or call numbers) this agent fired, by scenario name
        self.fired_by: dict[str, list[int]] = defaultdict(list)
        #: its last run's done record
        self.done: Any = None
        #: gossips its listeners could not take, said in its done (a test sets it)
        self.gossip_dropped = 0

    @property
    def fired(self) -> list[int]:
        """The slots it fired of the run's first scenario."""
        return self.fired_by[self.farm.coord.run.scenarios[0].name]

    @property
    def stopped_s(self) -> float | None:
        return None if self.done is None else self.done.stopped_s

    @property
    def reached(self) -> int | None:
        return None if self.done is None else self.done.reach(0)

    @property
    def ports(self):
        return self.current.ports if self.current is not None else {}

    def launch(self, plan, targets, report) -> None:
        def reported(kind, run, payload):
            if kind == "done":  # (the run stays current: its ports hand in their last records)
                self.done = payload = (
                    dataclasses.replace(payload, gossip_dropped=self.gossip_dropped) if self.gossip_dropped else payload
                )
            report(kind, run, payload)

        self.current = AgentRun(self.name, plan, targets, reported, clock=self.farm.clock)
        self.task = self.farm.loop.create_task(self.current.run())

    def epoch(self, at_s, shard, firsts, changes) -> None:
        if self.current is not None:
            self.current.epoch(at_s, shard, firsts, changes)

    def halt(self, *, abort, at_s=None, scenario=None) -> None:
        if self.current is not None:
            self.current.halt(abort=abort, at_s=at_s, scenario=scenario)

    def lease(self, until) -> None:
        if self.current is not None:
            self.current.lease(until)

    def kill(self) -> None:
        """kill -9: its run ends at once, nothing more is said."""
        if self.task is not None:
            self.task.cancel()
        self.current = None


class SimAgent:
    def __init__(self, farm: SimFarm, name: str, *, capacity: float = 1.0, once: bool = True, timing=None) -> None:
        self.farm = farm
        self.name = name
        self.identity = f"{name}/sim"
        self.runner = SimRunner(farm, name)
        self.machine = AgentMachine(
            name=name,
            host="sim",
            pid=len(farm.agents) + 1,
            capacity=capacity,
            cpus=2,
            resolve=lambda target, params: farm.target(self, target, params),
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

    def kill(self) -> None:
        """kill -9: it sends nothing more, ever, and its calls stop with it."""
        self.alive = False
        self.runner.kill()
        self.farm.net.cut(self.identity)

    def stop(self) -> None:
        """Its user stops it (Ctrl-C, SIGTERM): its run stops scheduling and reports, then it leaves."""
        self.driver.report("stop", "", {})

    def step(self) -> None:
        if self.alive and self.driver.status is None:
            self.driver.step(self.farm.clock())


class SimFarm:
    """The coordinator of ``run`` and agents added with ``agent``; ``step`` moves the clock.
    Every farm a test makes is closed after it (``conftest``): its tasks end, its loop closes."""

    #: the farms not closed yet
    open_farms: ClassVar[list[SimFarm]] = []

    def __init__(self, run: Run, expect: int, *, timing: Timing = TIMING, delay: float = 0.001, **coordinator) -> None:
        SimFarm.open_farms.append(self)
        self.clock = Clock()
        self.loop = VirtualLoop(self.clock)
        self.net = Network(self.clock, delay=delay)
        self.coord = Coordinator(run, expect=expect, timing=timing, hub=self.net.hub(), clock=self.clock,
                                 **coordinator)  # fmt: skip
        self.agents: dict[str, SimAgent] = {}
        self.coordinator_alive = True
        #: calls in flight now and the most at once, by scenario (the ``sleep`` target's counter)
        self.in_flight: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        #: each call's (start, calls in flight then), and the ids of the items worked on, by scenario
        self.starts: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self.worked: dict[str, list[str]] = defaultdict(list)

    def target(self, agent: SimAgent, name: str, params: dict) -> Any:
        """What a simulated agent resolves a target name to (see the module docstring)."""
        fired = agent.runner.fired_by
        scenarios = self.coord.run.scenarios

        def scenario_of(ctx) -> str:
            _, sep, scenario = ctx.worker.partition("/")
            return scenario if sep else scenarios[0].name

        if name == "noop":

            @inline
            def noop(ctx):
                scenario = scenario_of(ctx)
                fired[scenario].append(ctx.seq)
                self.starts[scenario].append((self.clock(), 1))

            return noop
        if name == "sleep":
            seconds = float(params.get("ms", 10)) / 1000

            async def sleep(ctx):
                scenario = scenario_of(ctx)
                fired[scenario].append(ctx.seq)
                count = self.in_flight[scenario]
                count[0] += 1
                count[1] = max(count[1], count[0])
                self.starts[scenario].append((self.clock(), count[0]))
                if ctx.item is not None:
                    self.worked[scenario].append(ctx.item.id)
                try:
                    await asyncio.sleep(seconds)
                finally:
                    count[0] -= 1

            return sleep
        if name == "busy":
            held = float(params.get("ms", 20)) / 1000

            @inline
            def busy(ctx):
                fired[scenario_of(ctx)].append(ctx.seq)
                self.clock.now += held  # the loop is held this long: a CPU-bound call

            return busy
        from pusher_farm.targets import resolve

        return resolve(name, params)

    def agent(self, name: str, **kw) -> SimAgent:
        a = self.agents[name] = SimAgent(self, name, **kw)
        return a

    def step(self, dt: float = 0.01) -> None:
        self.loop.run_until_complete(asyncio.sleep(dt))
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
        self.coord.settle()
        report = self.coord.report(0.0)
        for _ in range(200):  # the agents' last steps: every task ends
            if all(a.runner.task is None or a.runner.task.done() for a in self.agents.values()):
                break
            self.step(dt)
        return report

    def close(self) -> None:
        if self.loop.is_closed():
            return
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0.5))
        self.loop.close()
        for items in self.coord.items.values():
            items.close()
        self.coord.close()

    def __enter__(self) -> SimFarm:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def started_at(self) -> float:
        return self.coord.state.start_at

    def at(self, seconds_into_run: float, dt: float = 0.01) -> None:
        """Step until ``seconds_into_run`` seconds after the run's start."""
        while self.coord.state.start_at is None or self.clock() < self.coord.state.start_at + seconds_into_run:
            self.step(dt)


__all__ = ["TIMING", "Clock", "SimAgent", "SimFarm", "SimRunner", "VirtualLoop", "run_of", "spec"]
