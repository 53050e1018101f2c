"""The agent's decisions as a state machine with no I/O: the coordinator's twin.

Events in (a frame from the coordinator, a tick, a window or the end of a run from the
executor, the user's stop), actions out (send, launch a run, replan, halt, renew the lease,
reconnect, exit). The driver (``agent``) carries them out on its control thread; the executor
runs on the main thread. Nothing the coordinator sends is fatal: frames are decoded and checked
first, and a plan that is not valid is refused with the reason.

The lease: a run keeps going only while the coordinator is heard from. Each frame renews it
for ``lease`` seconds (the coordinator says how long in its welcome, so the agent always stops
before the coordinator could have given its share to another agent); the executor itself
checks it, so a control thread starved of the CPU cannot keep a load running unattended.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from pusher_farm._version import __version__
from pusher_farm.cluster.agent.agent_actions import (
    Action,
    Change,
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
from pusher_farm.cluster.protocol.messages import PROTOCOL_VERSION, InvalidMessage, Message, VersionMismatch, decode
from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.cluster.protocol.records import Done, Hello
from pusher_farm.cluster.timing import AgentTiming
from pusher_farm.core.load import load_from_wire
from pusher_farm.core.reporting import versions
from pusher_farm.core.shard import Shard
from pusher_farm.errors import ProtocolError, PusherError

__all__ = ["AgentMachine"]


#: error texts sent to the coordinator are cut to this many characters
_MOST_TEXT = 4000


class AgentMachine:
    """One agent's protocol state (see the module docstring). ``resolve(name, params)``
    builds a target on this host; ``connect`` names the coordinator in messages."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        pid: int,
        capacity: float,
        cpus: int,
        resolve: Callable[[str, Mapping[str, Any]], Callable[..., Any]],
        connect: str = "the coordinator",
        hint: str = "",
        once: bool = False,
        timing: AgentTiming | None = None,
        package: str = __version__,
        now: float = 0.0,
    ) -> None:
        self.hello_record = Hello(name, host, pid, float(capacity), cpus, package, versions()["python"],
                                  versions()["dependencies"])  # fmt: skip
        self.name = name
        self.connect = connect
        #: said when no coordinator answers (e.g. where to look when keys are in use)
        self.hint = hint
        self.package = package
        self.resolve = resolve
        self.once = once
        self.timing = timing or AgentTiming()
        self.heartbeat = self.timing.heartbeat
        #: seconds after the coordinator last heard this agent that its load may go on (its
        #: welcome says); also how long a silent coordinator is waited for before reconnecting
        self.lease = self.timing.coordinator_timeout
        self._lease_until = now
        self.welcomed = False
        self.leaving = False
        self.exited = False
        #: the run being executed (its id), how many scenarios it has, and whether it was halted
        self.current: str | None = None
        self.scenarios = 0
        self.halted = False
        self.runs_served = 0
        self.bad_frames = 0
        self._prepared: dict[str, Callable[..., Any]] = {}
        self._unacked: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._last_done: Done | None = None
        self._last_heard = now  # any frame from the coordinator
        self._last_contact = now  # ... also across reconnects: how long since anyone answered
        self._next_beat = now
        self._warned_silent = False

    # -- events -----------------------------------------------------------------------------

    def hello(self, now: float) -> list[Action]:
        """A fresh connection is up: say who this is."""
        self._last_heard = now
        self._next_beat = now + self.heartbeat
        return [Send("hello", self.hello_record.to_fields())]

    def on_frame(self, frame: bytes, now: float) -> list[Action]:
        try:
            msg = decode(frame)
        except VersionMismatch as exc:
            return self._exit(
                2,
                f"{self.connect} speaks protocol {exc.peer} (pusher-farm {exc.package or 'unknown'}); "
                f"this agent speaks protocol {PROTOCOL_VERSION} (pusher-farm {self.package}): upgrade one side",
            )
        except (InvalidMessage, ProtocolError) as exc:
            self.bad_frames += 1
            return [Log("warning", f"dropped a bad frame from the coordinator: {exc.reason}")]
        return self.on_message(msg, now)

    def on_message(self, msg: Message, now: float) -> list[Action]:
        self._last_heard = self._last_contact = now
        handler = _HANDLERS.get(msg.type)
        if handler is None:
            self.bad_frames += 1
            return [Log("warning", f"dropped {msg.type!r}: not a message for agents")]
        actions = handler(self, msg, now)
        seen = msg.get("seen")
        if seen is not None and self.welcomed:
            # The coordinator heard this agent ``seen`` seconds ago: the load may go on until
            # ``lease`` after that, and no longer (see ``Timing.lease``).
            self._lease_until = max(self._lease_until, now - seen + self.lease)
            if self.current is not None and not self.halted:
                actions.append(Lease(self._lease_until))
        return actions

    def on_tick(self, now: float, stats: Callable[[], Mapping[str, Any]] | None = None) -> list[Action]:
        """A wake-up; ``stats`` says what a heartbeat tells of this agent (its CPU, ...): it is
        asked only when a heartbeat goes."""
        if self.exited:
            return []
        actions: list[Action] = []
        if now >= self._next_beat:
            self._next_beat = now + self.heartbeat
            extra = stats() if stats is not None else {}
            actions.append(Send("heartbeat", {"state": "running" if self.current else "idle", **extra}))
        silent = now - self._last_heard
        if now > self._lease_until and self.current is not None and not self.halted:
            self.halted = True
            text = f"the coordinator has not heard this agent for {self.lease:.1f}s: stopping the load"
            actions.append(Log("warning", text))
            actions.append(Halt(self.current, abort=False))
        if silent > self.lease:
            actions += self._silence(now)
        if self.once and self.runs_served and self.current is None and not self._unacked and not self.exited:
            actions.append(Send("bye", {}))
            actions += self._exit(0, "")
        return actions

    def on_window(self, run: str, seq: int, wire: dict[str, Any]) -> list[Action]:
        """The executor closed a window: keep it until acknowledged, and send it."""
        fields = {"run": run, "seq": seq, "w": wire}
        self._unacked[(run, seq)] = fields
        while len(self._unacked) > self.timing.max_unacked:
            self._unacked.popitem(last=False)
        return [Send("window", fields)]

    def on_done(self, done: Done, now: float) -> list[Action]:
        """The run ended on the executor: say so (again after a reconnect, like windows)."""
        if done.error is not None:
            done = dataclasses.replace(done, error=done.error[:_MOST_TEXT])
        self._last_done = done
        self.current = None
        self.halted = False
        self.runs_served += 1
        actions: list[Action] = [Send("done", done.to_fields())]
        if self.leaving:
            actions += [Send("bye", {}), *self._exit(0, "")]
        return actions

    def item_mail(self, run: str, scenario: int, credit: int, finished: list[dict[str, Any]]) -> list[Action]:
        """The current run's items of ``scenario``: ask for as many as ``credit`` allows and
        hand in the records of those ``finished`` (they go whatever the run: the coordinator
        counts each once)."""
        if run != self.current and not finished:
            return []
        credit = credit if run == self.current and not self.halted else 0
        fields: dict[str, Any] = {"run": run, "sc": scenario, "credit": credit}
        if finished:
            fields["fin"] = finished
        return [Send("want", fields)]

    def stop(self) -> list[Action]:
        """The user asked this agent to stop: the run in progress stops scheduling and reports,
        then the agent leaves."""
        self.leaving = True
        if self.current is not None:
            self.halted = True
            return [Halt(self.current, abort=False)]
        return [Send("bye", {}), *self._exit(0, "")]

    # -- handlers ---------------------------------------------------------------------------

    def _on_ping(self, msg: Message, now: float) -> list[Action]:
        return [Send("pong", {"id": msg["id"], "t0": msg["t0"], "t1": now, "t2": now})]

    def _on_welcome(self, msg: Message, now: float) -> list[Action]:
        actions: list[Action] = []
        if not self.welcomed:
            actions.append(Log("info", f"connected to {self.connect} (pusher-farm {msg['package']})"))
        self.welcomed = True
        self.heartbeat = msg["heartbeat"]
        self.lease = msg["lease"]
        self._next_beat = min(self._next_beat, now + self.heartbeat)
        # What was never acknowledged goes again; the coordinator counts each window once.
        actions += [Send("window", fields) for fields in self._unacked.values()]
        if self._last_done is not None:
            actions.append(Send("done", self._last_done.to_fields()))
        return actions

    def _on_ack(self, msg: Message, now: float) -> list[Action]:
        run, upto = msg["run"], msg["seq"]
        for key in [k for k in self._unacked if k[0] == run and k[1] <= upto]:
            del self._unacked[key]
        return []

    def _on_prepare(self, msg: Message, now: float) -> list[Action]:
        run = msg["run"]
        if self.current is not None:
            return [Send("refuse", {"run": run, "error": "busy with another run", "kind": ""})]
        targets: list[Callable[..., Any]] = []
        name = "?"
        try:
            for name, params in msg["scenarios"]:
                targets.append(self.resolve(name, params))
        except PusherError as exc:
            return [
                Send("refuse", {"run": run, "error": exc.reason[:_MOST_TEXT], "kind": exc.kind}),
                Log("error", f"cannot run target {name!r}: {exc}"),
            ]
        except Exception as exc:  # a target's own module raising while it is built
            error = f"{type(exc).__name__}: {exc}"[:_MOST_TEXT]
            return [Send("refuse", {"run": run, "error": error, "kind": ""})]
        if not targets:
            return [Send("refuse", {"run": run, "error": "a run without a scenario", "kind": "protocol error"})]
        self._prepared = {run: tuple(targets)}
        return [Send("ready", {"run": run})]

    def _on_start(self, msg: Message, now: float) -> list[Action]:
        run = msg["run"]
        targets = self._prepared.pop(run, None)
        if targets is None:
            return [Log("warning", f"start for run {run} that was never prepared: ignored")]
        try:
            plan = AgentPlan.from_wire(run, msg["plan"])
        except ProtocolError as exc:
            return [
                Send("refuse", {"run": run, "error": f"bad plan: {exc.reason}"[:_MOST_TEXT], "kind": "protocol error"}),
                Log("error", f"bad plan for run {run}: {exc.reason}"),
            ]
        if len(targets) != len(plan.scenarios):
            error = "bad plan: its scenarios are not the targets it prepared"
            return [Send("refuse", {"run": run, "error": error, "kind": "protocol error"}), Log("error", error)]
        self.current = run
        self.scenarios = len(plan.scenarios)
        self.halted = False
        lead = plan.local_start - now
        text = f"run {run} starts in {lead:.3f}s (clock offset {plan.offset * 1000:.3f} ms)"
        return [Log("info", text), Launch(plan, targets)]

    def _on_epoch(self, msg: Message, now: float) -> list[Action]:
        run = msg["run"]
        if self.current != run:
            return []
        weights, firsts = tuple(msg["weights"]), tuple(msg["firsts"])
        try:
            if not msg["index"] < len(weights):
                raise ProtocolError("index out of range")
            if len(firsts) != self.scenarios:
                raise ProtocolError(f"{len(firsts)} scenarios, this run has {self.scenarios}")
            changes = []
            for c in msg.get("changes", ()):
                if not c["sc"] < self.scenarios:
                    raise ProtocolError(f"a change of scenario {c['sc']}, this run has {self.scenarios}")
                load = load_from_wire(c["load"]) if "load" in c else None
                changes.append(Change(c["sc"], load, c.get("overtime")))
        except ProtocolError as exc:
            self.bad_frames += 1
            return [Log("error", f"bad epoch for run {run}: {exc.reason}")]
        shard = Shard(msg["index"], weights)
        text = f"new plan from t={msg['at_s']:.3f}s: share {shard.share:.3f}"
        for c in changes:
            said = ([c.load.describe()] if c.load is not None else []) + (
                [f"overtime {c.overtime}"] if c.overtime is not None else []
            )
            text += f"; scenario {c.index}: " + ", ".join(said)
        return [Log("info", text), Replan(run, msg["at_s"], shard, firsts, tuple(changes))]

    def _on_items(self, msg: Message, now: float) -> list[Action]:
        if self.current != msg["run"] or not msg["sc"] < self.scenarios:
            return []  # a run that ended: the coordinator hands them out again
        return [Give(msg["run"], msg["sc"], msg["items"])]

    def _on_stop(self, msg: Message, now: float) -> list[Action]:
        if self.current != msg["run"]:
            return []
        scenario = msg.get("sc")
        if scenario is None:
            self.halted = True
        what = "abort" if msg["abort"] else "stop"
        text = f"coordinator asked to {what} run {msg['run']}"
        if scenario is not None:
            text += f" (scenario {scenario})"
        return [Log("info", text), Halt(msg["run"], abort=msg["abort"], at_s=msg.get("at_s"), scenario=scenario)]

    def _on_refused(self, msg: Message, now: float) -> list[Action]:
        reason = (
            f"{self.connect} refused this agent (protocol {PROTOCOL_VERSION}, pusher-farm {self.package}): "
            f"{msg['reason']}"
        )
        if "package" not in msg.body:  # a coordinator that predates the envelope: name it too
            reason += f" (the coordinator: protocol {msg.get('v', 'unknown')}, pusher-farm unknown)"
        return self._exit(2, reason)

    def _on_heartbeat(self, msg: Message, now: float) -> list[Action]:
        return []

    # -- helpers ----------------------------------------------------------------------------

    def _silence(self, now: float) -> list[Action]:
        """The coordinator is silent: leave (an ``once`` agent that has nothing left to hand
        in), or try a fresh connection."""
        quiet_for = now - self._last_contact
        if not (self.runs_served or self.welcomed):
            gone = quiet_for > self.timing.connect_timeout
        else:
            gone = not self._unacked or quiet_for > self.timing.once_hold
        if self.once and gone and self.current is None:
            held = f", {len(self._unacked)} windows never acknowledged" if self._unacked else ""
            return [Log("warning", f"coordinator gone: exiting (--once){held}"), *self._exit(0, "")]
        actions: list[Action] = []
        if not self.welcomed and not self._warned_silent:
            self._warned_silent = True
            text = f"no answer from {self.connect} yet: is the coordinator running{self.hint}?"
            actions.append(Log("warning", text))
        # A fresh socket drops whatever queued for the old peer (a stale hello among it), then
        # hello again: after a partition heals, the next hello gets this agent welcomed back
        # and its unacknowledged windows re-sent.
        self.welcomed = False
        actions.append(Reconnect())
        actions += self.hello(now)
        return actions

    def _exit(self, status: int, reason: str) -> list[Action]:
        if self.exited:
            return []
        self.exited = True
        return [Exit(status, reason)]


_HANDLERS: dict[str, Callable[[AgentMachine, Message, float], list[Action]]] = {
    "ping": AgentMachine._on_ping,
    "welcome": AgentMachine._on_welcome,
    "ack": AgentMachine._on_ack,
    "prepare": AgentMachine._on_prepare,
    "start": AgentMachine._on_start,
    "epoch": AgentMachine._on_epoch,
    "stop": AgentMachine._on_stop,
    "items": AgentMachine._on_items,
    "refused": AgentMachine._on_refused,
    "heartbeat": AgentMachine._on_heartbeat,
}
