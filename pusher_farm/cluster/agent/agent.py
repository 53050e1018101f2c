"""The agent: serves farm runs from a coordinator, one after another, until stopped.

Two threads with one job each. The control thread owns the link: it drives the agent's state
machine (``agent_state``), so it answers pings, resolves targets, heartbeats, sends report
windows and watches the coordinator. The main thread runs the core executor on an event loop
(``ExecutorRunner``). So an agent whose target saturates its loop still heartbeats (it is
reported as busy, not as dead), and a coordinator that goes silent stops the load even while
the loop is busy (the executor holds a lease the control thread renews).

``AgentDriver`` carries the machine's actions out on a link and a runner and is stepped once
per wake-up: by the control thread here, or by a test's fake clock over the in-process
transport with a simulated runner. Nothing executable arrives over the wire: the target is a
name resolved on this host.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from pusher_farm.cluster.agent.agent_actions import (
    Action,
    Exit,
    Give,
    Halt,
    Launch,
    Lease,
    Log,
    Reconnect,
    Replan,
    Send,
)
from pusher_farm.cluster.agent.agent_state import AgentMachine
from pusher_farm.cluster.agent.runner import ExecutorRunner, Runner
from pusher_farm.cluster.control.snapshot import AgentMetrics
from pusher_farm.cluster.protocol.messages import check_capacity, encode
from pusher_farm.cluster.timing import AgentTiming
from pusher_farm.cluster.transport.seam import Link, LinkFactory
from pusher_farm.cluster.transport.security import AgentKeys
from pusher_farm.core.gossip import Gossiper

__all__ = ["Agent", "AgentDriver"]

log = logging.getLogger("pusher_farm.cluster")


class AgentDriver:
    """Carries an ``AgentMachine``'s actions out on a link (made by ``links``) and a runner.

    Resource handling: owns its link; ``close`` (or an ``Exit``) closes it.
    """

    def __init__(
        self,
        machine: AgentMachine,
        links: LinkFactory,
        runner: Runner,
        *,
        probe: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.machine = machine
        self.links = links
        self.runner = runner
        self.probe = probe
        self.link: Link | None = None
        #: the exit status once the machine said to exit (None: still serving)
        self.status: int | None = None
        self._inbox: queue.SimpleQueue[tuple[str, str, Any]] = queue.SimpleQueue()

    def start(self, now: float) -> None:
        self.link = self.links()
        self.apply(self.machine.hello(now), now)

    def report(self, kind: str, run: str, payload: Any) -> None:
        """What the runner measured (any thread): handed to the machine on the next step."""
        self._inbox.put((kind, run, payload))

    def step(self, now: float, timeout: float = 0.0) -> None:
        """One wake-up: frames in, runner results in, a tick."""
        assert self.link is not None
        for frame in self.link.recv(timeout):
            self.apply(self.machine.on_frame(frame, now), now)
            if self.status is not None:
                return  # it exited: nothing more goes out
        self._mail(now)
        while True:
            try:
                kind, run, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "window":
                self.apply(self.machine.on_window(run, *payload), now)
            elif kind == "done":
                self._mail(now, every=True)  # every finished item is handed in before the done
                self.apply(self.machine.on_done(payload, now), now)
            elif kind == "abort":  # the user asked again: cancel the calls in flight too
                self.runner.halt(abort=True)
            else:  # "stop": the user asked this agent to stop
                self.apply(self.machine.stop(), now)
            if self.status is not None:
                return
        if self.status is None:
            self.apply(self.machine.on_tick(now, self.probe), now)

    def _mail(self, now: float, *, every: bool = False) -> None:
        """The current run's items: ask for more, hand in the finished (``every``: all)."""
        for port in list(self.runner.ports.values()):
            while True:
                mail = port.mail(now)
                if mail is not None:
                    self.apply(self.machine.item_mail(port.run, port.scenario, *mail), now)
                if not (every and port.pending):
                    break

    def apply(self, actions: Sequence[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self.link is not None:
                    self.link.send(encode(action.type, **action.fields))
            elif isinstance(action, Launch):
                self.runner.launch(action.plan, action.targets, self.report)
            elif isinstance(action, Replan):
                self.runner.epoch(action.at_s, action.shard, action.firsts, action.changes)
            elif isinstance(action, Halt):
                self.runner.halt(abort=action.abort, at_s=action.at_s, scenario=action.scenario)
            elif isinstance(action, Lease):
                self.runner.lease(action.until)
            elif isinstance(action, Give):
                port = self.runner.ports.get(action.scenario)
                if port is not None and port.run == action.run:
                    port.give(action.items)
            elif isinstance(action, Reconnect):
                if self.link is not None:
                    self.link.close(0.0)
                self.link = self.links()
            elif isinstance(action, Exit):
                self.status = action.status
                if action.status:
                    log.error("%s", action.reason)
                if self.machine.current is not None:
                    self.runner.halt(abort=True)
                self.close(self.machine.timing.linger)
            elif isinstance(action, Log):
                log.log(logging.getLevelName(action.level.upper()), "%s", action.text)

    def close(self, linger: float = 0.0) -> None:
        if self.link is not None:
            self.link.close(linger)


class Agent:
    """Connects to ``connect`` and serves runs. ``serve()`` blocks and returns an exit status
    (0; 2 when the coordinator refused this agent, e.g. for another protocol version)."""

    def __init__(
        self,
        connect: str,
        *,
        name: str | None = None,
        capacity: float = 1.0,
        once: bool = False,
        timing: AgentTiming | None = None,
        gossips: Sequence[Gossiper] = (),
        resolve: Callable[[str, Mapping[str, Any]], Callable[..., Any]] | None = None,
        keys: AgentKeys | None = None,
        links: LinkFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: AgentMetrics | None = None,
    ) -> None:
        from pusher_farm.targets import resolve as default_resolve

        check_capacity(capacity)
        self.connect = connect
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.identity = f"{self.name}/{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self._stopping = threading.Event()
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self.runner = ExecutorRunner(self.name, gossips, metrics)
        machine = AgentMachine(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            capacity=capacity,
            cpus=os.cpu_count() or 1,
            resolve=resolve or default_resolve,
            connect=connect,
            hint=" and is this agent's public key in its authorized/ folder" if keys is not None else "",
            once=once,
            timing=timing,
            now=clock(),
        )
        if links is None:
            links = self._zmq_links(connect, keys)
        self.driver = AgentDriver(machine, links, self.runner, probe=self._probe)

    def _zmq_links(self, connect: str, keys: AgentKeys | None) -> LinkFactory:
        import zmq

        from pusher_farm.cluster.transport.zeromq import ZmqLink

        context = zmq.Context.instance()
        ZmqLink(context, connect, self.identity, keys).close()  # a bad endpoint fails here, not later
        return lambda: ZmqLink(context, connect, self.identity, keys)

    def _probe(self) -> dict[str, Any]:
        return {"cpu": min(self._process.cpu_percent(None), 1e5)}

    def serve(self) -> int:
        control = threading.Thread(target=self._control, name="agent-control", daemon=True)
        control.start()
        try:
            self.runner.serve(self._stopping)
        finally:
            self._stopping.set()
            control.join(10)
        return self.driver.status or 0

    def stop(self, *, abort: bool = False) -> None:
        """Stop serving (thread-safe): the run in progress stops scheduling and reports first;
        ``abort``: its calls in flight are canceled too."""
        self.driver.report("abort" if abort else "stop", "", {})

    def _control(self) -> None:
        driver = self.driver
        try:
            driver.start(self.clock())
            while driver.status is None and not self._stopping.is_set():
                driver.step(self.clock(), timeout=0.02)
        except Exception:  # a bug here must not leave the main thread waiting forever
            log.exception("agent control thread failed")
            driver.status = 1
        finally:
            driver.close()
            self._stopping.set()
            self.runner.close()
