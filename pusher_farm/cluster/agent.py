"""The agent: serves farm runs from a coordinator, one after another, until stopped.

Two threads with one job each. The control thread owns the ZeroMQ socket: it answers pings,
resolves targets, sends heartbeats and report windows, and watches the coordinator. The main
thread runs the core executor on an event loop. So an agent whose target saturates its loop
still heartbeats (it is reported as busy, not as dead), and a coordinator that goes silent
stops the load within the timeout even while the loop is busy.

Nothing executable arrives over the wire: the target is a name resolved on this host.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
import zmq

from pusher_farm.cluster.plan import AgentPlan
from pusher_farm.cluster.protocol import Message
from pusher_farm.cluster.security import AgentKeys
from pusher_farm.cluster.transport import DealerTransport
from pusher_farm.core import loop as _loop
from pusher_farm.core.config import (
    with_batch,
    with_gossips,
    with_overtime,
    with_profile,
    with_spin,
    with_timeout,
    with_window,
)
from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.schedule import Shard
from pusher_farm.core.window import Window
from pusher_farm.core.worker import Worker, hire
from pusher_farm.errors import ProtocolError, PusherError

__all__ = ["Agent", "AgentTiming"]

log = logging.getLogger("pusher_farm.cluster")


@dataclass(frozen=True)
class AgentTiming:
    heartbeat: float = 1.0
    #: a coordinator silent this long stops the load (and ends an ``once`` agent)
    coordinator_timeout: float = 3.0
    #: unacknowledged windows kept for re-sending (oldest dropped beyond it)
    max_unacked: int = 3600
    #: an ``once`` agent that no coordinator ever answered gives up after this long
    connect_timeout: float = 60.0
    #: an ``once`` agent whose coordinator went silent keeps offering unacknowledged windows
    #: this long (a partition that heals in time costs nothing), then exits
    once_hold: float = 8.0


@dataclass
class _Run:
    plan: AgentPlan
    target: Callable[..., Any]
    worker: Worker | None = None
    stop_requested: bool = False
    #: epochs that arrived before the worker existed
    epochs: list[tuple[int, Shard]] = field(default_factory=list)


class Agent:
    """Connects to ``connect`` and serves runs. ``serve()`` blocks and returns an exit status."""

    def __init__(
        self,
        connect: str,
        *,
        name: str | None = None,
        capacity: float = 1.0,
        once: bool = False,
        timing: AgentTiming | None = None,
        gossips: Sequence[Gossiper] = (),
        resolve: Callable[[str, dict[str, Any]], Callable[..., Any]] | None = None,
        keys: AgentKeys | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from pusher_farm.targets import resolve as default_resolve

        self.connect = connect
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.identity = f"{self.name}/{uuid.uuid4().hex[:8]}"
        self.capacity = capacity
        self.once = once
        self.timing = timing or AgentTiming()
        self.gossips = tuple(gossips)
        self.resolve = resolve or default_resolve
        self.keys = keys
        self.clock = clock
        self.status = 0
        self._stopping = threading.Event()
        self._runs: queue.SimpleQueue[_Run | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._prepared: dict[str, Callable[..., Any]] = {}
        self._current: _Run | None = None
        self._unacked: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._last_seen = clock()
        self._welcomed = False
        self._warned_silent = False
        self._last_done: dict[str, Any] | None = None
        self._last_contact = clock()
        self._runs_served = 0
        self._process = psutil.Process()
        self._process.cpu_percent(None)

    # -- main thread: the load ------------------------------------------------------------------

    def serve(self) -> int:
        control = threading.Thread(target=self._control, name="agent-control", daemon=True)
        control.start()
        try:
            while not self._stopping.is_set():
                try:
                    run = self._runs.get(timeout=0.2)
                except queue.Empty:
                    continue
                if run is None:
                    break
                self._execute(run)
        finally:
            self._stopping.set()
            control.join(10)
        return self.status

    def stop(self) -> None:
        """Stop serving (thread-safe): the run in progress stops scheduling first."""
        self._request_stop(abort=False)
        self._stopping.set()
        self._runs.put(None)

    def _execute(self, run: _Run) -> None:
        plan = run.plan
        windows = 0

        def on_window(w: Window) -> None:
            nonlocal windows
            self._outbox.put(("window", {"run": plan.run, "seq": windows, "w": w.to_wire()}))
            windows += 1

        done: dict[str, Any] = {"run": plan.run, "stopped_early": True, "sent_s": 0.0}
        cpu0, started = time.process_time(), time.monotonic()
        try:
            worker = hire(
                self.name,
                run.target,
                with_profile(plan.profile),
                with_overtime(plan.overtime),
                with_timeout(plan.timeout),
                with_window(plan.window),
                with_spin(plan.spin),
                with_batch(plan.batch),
                with_gossips(*self.gossips),
            )
            for epoch in run.epochs:
                worker.replan(*epoch)
            run.worker = worker
            if not run.stop_requested:
                report = _loop.run(
                    worker.work(
                        None,
                        plan.until,
                        on_window=on_window,
                        shard=plan.shard,
                        first_slot=plan.first,
                        start_at=plan.local_start,
                    )
                )
                done.update(
                    stopped_early=report.stopped_early or run.stop_requested,
                    sent_s=report.send_duration_s,
                    gossip_dropped=report.gossip_dropped,
                )
        except PusherError as exc:  # a plan this agent cannot follow: say so, count nothing
            log.error("run %s: %s", plan.run, exc)
        elapsed = time.monotonic() - started
        done.update(
            windows=windows, elapsed_s=elapsed, cpu=round(100 * (time.process_time() - cpu0) / max(elapsed, 1e-9), 1)
        )
        self._outbox.put(("done", done))
        self._current = None
        self._runs_served += 1
        log.info("run %s done: %d windows", plan.run, windows)

    def _request_stop(self, *, abort: bool) -> None:
        run = self._current
        if run is None:
            return
        run.stop_requested = True
        if run.worker is not None:
            run.worker.stop()

    # -- control thread: the socket -------------------------------------------------------------

    def _control(self) -> None:
        context = zmq.Context()
        transport = self._connect(context)
        next_beat = self.clock()
        try:
            while not self._stopping.is_set():
                if transport.poll(0.02):
                    now = self.clock()
                    for msg in transport.recv_all():
                        self._last_seen = self._last_contact = now
                        self._handle(transport, msg, now)
                self._flush_outbox(transport)
                now = self.clock()
                if now >= next_beat:
                    next_beat = now + self.timing.heartbeat
                    transport.send(
                        "heartbeat", state="running" if self._current else "idle", cpu=self._process.cpu_percent(None)
                    )
                silent = now - self._last_seen
                if silent > self.timing.coordinator_timeout:
                    if self._current is not None and not self._current.stop_requested:
                        log.warning("coordinator silent for %.1fs: stopping the load", silent)
                        self._request_stop(abort=True)
                    # An --once agent leaves a silent coordinator, but not with measurements it has
                    # not handed in: those it keeps offering until the connect timeout.
                    quiet_for = now - self._last_contact
                    if not (self._runs_served or self._welcomed):
                        gone = quiet_for > self.timing.connect_timeout
                    else:
                        gone = not self._unacked or quiet_for > self.timing.once_hold
                    if self.once and gone and self._current is None:
                        log.warning(
                            "coordinator gone: exiting (--once)%s",
                            f", {len(self._unacked)} windows never acknowledged" if self._unacked else "",
                        )
                        self._stopping.set()
                        self._runs.put(None)
                        break
                    if not self._welcomed and not self._warned_silent:
                        self._warned_silent = True
                        log.warning(
                            "no answer from %s yet: is the coordinator running%s?",
                            self.connect,
                            " and is this agent's public key in its authorized/ folder" if self.keys else "",
                        )
                    if self._welcomed or silent > 2 * self.timing.coordinator_timeout:
                        # A fresh socket drops whatever queued for the old peer, then hello again.
                        transport.close()
                        transport = self._connect(context)
                        self._last_seen = now
                        self._welcomed = False
                if self.once and self._runs_served and self._current is None and not self._unacked:
                    self._flush_outbox(transport)  # the run's ``done`` may have just been queued
                    if self._unacked:
                        continue
                    transport.send("bye")
                    transport.linger = 1.0  # let the last done and bye leave before closing
                    self._stopping.set()
                    self._runs.put(None)
                    break
        finally:
            transport.close()
            context.term()

    def _connect(self, context: zmq.Context[Any]) -> DealerTransport:
        curve = None if self.keys is None else (self.keys.public, self.keys.secret, self.keys.server)
        transport = DealerTransport(context, self.connect, self.identity, curve)
        transport.send(
            "hello",
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            capacity=float(self.capacity),
            cpus=os.cpu_count() or 1,
        )
        return transport

    def _flush_outbox(self, transport: DealerTransport) -> None:
        while True:
            try:
                type_, fields = self._outbox.get_nowait()
            except queue.Empty:
                return
            if type_ == "window":
                self._unacked[(fields["run"], fields["seq"])] = fields
                while len(self._unacked) > self.timing.max_unacked:
                    self._unacked.popitem(last=False)
            elif type_ == "done":
                self._last_done = fields  # offered again after a reconnect, like windows
            transport.send(type_, **fields)

    def _handle(self, transport: DealerTransport, msg: Message, now: float) -> None:
        t = msg.type
        if t == "ping":
            transport.send("pong", id=msg["id"], t0=msg["t0"], t1=now, t2=self.clock())
        elif t == "welcome":
            if not self._welcomed:
                log.info("connected to %s as %s", self.connect, self.identity)
            self._welcomed = True
            for fields in list(self._unacked.values()):  # re-send what was never acknowledged
                transport.send("window", **fields)
            if self._last_done is not None:
                transport.send("done", **self._last_done)
        elif t == "ack":  # cumulative: every window of the run up to seq is in
            run, upto = msg["run"], msg["seq"]
            for key in [k for k in self._unacked if k[0] == run and k[1] <= upto]:
                del self._unacked[key]
        elif t == "prepare":
            self._prepare(transport, msg)
        elif t == "start":
            self._start(msg)
        elif t == "epoch":
            self._epoch(msg)
        elif t == "stop":
            if self._current is not None and self._current.plan.run == msg["run"]:
                log.info("coordinator asked to stop run %s", msg["run"])
                self._request_stop(abort=msg["abort"])
        elif t == "refused":
            log.error("coordinator refused this agent: %s", msg["reason"])
            self.status = 2
            self._stopping.set()
            self._runs.put(None)
        elif t == "heartbeat":
            pass
        else:
            transport.bad.drop(f"{t!r} is not a message for agents")

    def _prepare(self, transport: DealerTransport, msg: Message) -> None:
        run = msg["run"]
        try:
            target = self.resolve(msg["target"], msg["params"])
        except PusherError as exc:
            transport.send("refuse", run=run, error=str(exc))
            log.error("cannot run target %r: %s", msg["target"], exc)
            return
        except Exception as exc:
            transport.send("refuse", run=run, error=f"{type(exc).__name__}: {exc}")
            return
        if self._current is not None:
            transport.send("refuse", run=run, error="busy with another run")
            return
        self._prepared = {run: target}
        transport.send("ready", run=run)

    def _epoch(self, msg: Message) -> None:
        run = self._current
        if run is None or run.plan.run != msg["run"]:
            return
        try:
            weights = tuple(float(w) for w in msg["weights"])
            shard = Shard(msg["index"], weights)
        except (TypeError, ValueError, PusherError) as exc:
            log.error("bad epoch for run %s: %s", msg["run"], exc)
            return
        log.info("new plan from slot %d: share %.3f", msg["from_slot"], weights[shard.index] / sum(weights))
        if run.worker is None:
            run.epochs.append((msg["from_slot"], shard))
        else:
            run.worker.replan(msg["from_slot"], shard)

    def _start(self, msg: Message) -> None:
        run_id = msg["run"]
        target = self._prepared.pop(run_id, None)
        if target is None:
            log.warning("start for run %s that was never prepared: ignored", run_id)
            return
        try:
            plan = AgentPlan.from_wire(run_id, msg["plan"])
        except ProtocolError as exc:
            log.error("bad plan for run %s: %s", run_id, exc)
            return
        run = _Run(plan, target)
        self._current = run
        lead = plan.local_start - self.clock()
        log.info("run %s starts in %.3fs (clock offset %.3f ms)", run_id, lead, plan.offset * 1000)
        self._runs.put(run)
