"""The farm's messages: typed, versioned msgpack maps, every field checked. Knows nothing of
sockets.

Every message is a map ``{"v": PROTOCOL_VERSION, "t": TYPE, ...fields}``. ``decode`` turns
bytes into a ``Message`` whose every known field has been checked (type, finite number, range,
length), or raises ``ProtocolError`` (never anything else), so nothing a peer sends reaches a
state machine unchecked. Unknown extra fields are dropped. Only plain data crosses the wire:
msgpack with no extension types, never pickle; a target travels as a *name* the agent resolves
on its own host.

**The refusal envelope** is the one message every version decodes, whatever its ``v``::

    {"t": "refused", "v": <the refused peer's version>, "reason": str,
     "versions": [versions this side speaks], "package": "<this side's pusher-farm version>"}

A side that meets a peer of another version answers with it, echoing the peer's own ``v``, so
that even a peer that predates the envelope (protocol 2 reads any ``refused`` of its own
version) hears why it was turned away, and names both versions.

Agent → coordinator:  hello, pong, ready, refuse, window, done, heartbeat, bye, want
Coordinator → agent:  welcome, refused, ping, prepare, start, epoch, ack, stop, heartbeat, items

Work items (a scenario with a feed) flow under credit: an agent says how many items of a
scenario (``sc``) it wants to hold (``want``: its credit, with the records of the items it
finished), the coordinator hands it at most that many beyond what it already holds (``items``).

``decode`` also turns the messages a state machine reads as records into typed ones, once
(``records``: the hello, a window, the done record): past this module nobody reads them by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from pusher_farm.cluster.protocol.fields import (
    Anything,
    Field,
    Flag,
    Item,
    List,
    Map,
    Number,
    Record,
    Shape,
    Target,
    Text,
    Versions,
    Whole,
)
from pusher_farm.cluster.protocol.records import RECORDS
from pusher_farm.errors import InvalidOption, ProtocolError

__all__ = [
    "MAX_AGENTS",
    "MAX_CAPACITY",
    "MAX_MESSAGE_BYTES",
    "MAX_SCENARIOS",
    "PROTOCOL_VERSION",
    "Message",
    "InvalidMessage",
    "VersionMismatch",
    "check_capacity",
    "decode",
    "encode",
    "refusal",
]

#: 6: every run a list of scenarios with a typed load model (one epoch form: an instant, each
#: scenario's first slot and its runtime changes; stops at an instant, for one scenario or all;
#: items per scenario; the done record per scenario); 5: scenarios, windows by scenario and call
#: name; 4: work items (want, items); 3: checked fields, the refusal envelope, package versions,
#: settings as one record, slot accounting (reach) and leases; 2: histograms travel as one dense
#: run of counts
PROTOCOL_VERSION = 6
#: larger frames are refused by the sockets and by ``decode`` (a window is a few KB)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: an agent's capacity (its weight in the farm's shares) lies in (0, MAX_CAPACITY]
MAX_CAPACITY = 1e6
#: the most agents one run can shard among
MAX_AGENTS = 100_000
#: the most scenarios a message may name (a run's, ``core.run.MAX_SCENARIOS``)
MAX_SCENARIOS = 64

_SLOTS = 1 << 53  # slot numbers and counters stay exact in a float


def check_capacity(capacity: float) -> float:
    """An agent's capacity (its weight in the farm's shares): a number in (0, MAX_CAPACITY]."""
    if isinstance(capacity, bool) or not isinstance(capacity, (int, float)) or not 0 < capacity <= MAX_CAPACITY:
        raise InvalidOption(f"capacity must be a number above 0 and at most {MAX_CAPACITY:g}, got {capacity!r}")
    return float(capacity)


class VersionMismatch(ProtocolError):
    """A peer speaks another protocol version (``peer``: its version, ``package``: its
    pusher-farm version when it said)."""

    kind = "protocol version mismatch"

    def __init__(self, peer: Any, package: Any = None) -> None:
        self.peer = peer if isinstance(peer, int) and not isinstance(peer, bool) else None
        self.package = package if isinstance(package, str) and len(package) <= 64 else None
        super().__init__(f"peer speaks protocol version {peer!r}, this side speaks {PROTOCOL_VERSION}")


class InvalidMessage(ProtocolError):
    """A message of a known ``type`` (this version's) with a field that is missing or wrong."""

    kind = "invalid message"

    def __init__(self, type_: str, reason: str) -> None:
        self.type = type_
        super().__init__(reason)


# -- field checks -------------------------------------------------------------------------------


_RUN = Text(64, 1)
_TIME = Number()  # a clock reading in seconds (monotonic clocks start anywhere)
_SEQ = Whole()
_PACKAGE = Text(64, 1)
_ERROR = Text(4096)
_SEEN = Number(0.0, 1e6)
Record._FIELDS = {
    "seq": _SEQ,
    "status": Text(16),
    "attempts": Whole(1, 1 << 20),
    "error": _ERROR,
    "result": Anything(),
    "retries": List(_ERROR, 1 << 20),
    "latency_ms": Number(0.0, 1e12),
}
#: most items or records in one message
MAX_ITEMS = 4096
#: a runtime change of one scenario in an epoch: its new load model and cap on calls in flight
_CHANGE = Shape({"sc": Whole(0, MAX_SCENARIOS - 1)}, {"load": Map(16), "overtime": Whole(0, 1_000_000)})

# type -> (required fields, optional fields)
SCHEMA: dict[str, tuple[dict[str, Field], dict[str, Field]]] = {
    # agent -> coordinator
    "hello": (
        {
            "name": Text(200, 1),
            "host": Text(255),
            "pid": Whole(0, 1 << 32),
            "capacity": Number(0.0, MAX_CAPACITY, above=True),
            "cpus": Whole(1, 1 << 20),
            "package": _PACKAGE,
        },
        {"python": Text(32), "deps": Versions()},
    ),
    "pong": ({"id": Whole(), "t0": _TIME, "t1": _TIME, "t2": _TIME}, {}),
    "ready": ({"run": _RUN}, {}),
    "refuse": ({"run": _RUN, "error": _ERROR}, {"kind": Text(64)}),
    "window": ({"run": _RUN, "seq": _SEQ, "w": Map(64)}, {}),
    "done": (
        {"run": _RUN, "windows": _SEQ, "stopped_early": Flag()},
        {
            "sent_s": Number(0.0),
            "ran_s": Number(0.0),
            "elapsed_s": Number(0.0),
            "cpu": Number(0.0, 1e5),
            "gossip_dropped": _SEQ,
            "error": _ERROR,
            # each scenario of the plan, in its order
            "scenarios": List(
                Shape(
                    {"planned": _SEQ, "stopped_early": Flag()},
                    {"reach": _SEQ, "stopped_s": Number(0.0, 1e9), "starved": _SEQ},
                ),
                MAX_SCENARIOS,
            ),
        },
    ),
    "bye": ({}, {}),
    "want": (
        {"run": _RUN, "sc": Whole(0, MAX_SCENARIOS - 1), "credit": Whole(0, 1 << 20)},
        {"fin": List(Record(), MAX_ITEMS)},
    ),
    # coordinator -> agent: each may say how long ago the coordinator last heard the agent
    # ("seen"), which renews the agent's lease
    "welcome": (
        {
            "agent": Text(1024, 1),
            "package": _PACKAGE,
            "heartbeat": Number(0.01, 60.0),
            "lease": Number(0.05, 3600.0),
        },
        {"seen": _SEEN},
    ),
    # "v" is kept: a refusal from a peer that predates the envelope carries its own version there
    "refused": ({"reason": _ERROR}, {"v": Whole(0, 1 << 31), "versions": List(Whole(), 16), "package": _PACKAGE}),
    "ping": ({"id": Whole(), "t0": _TIME}, {"seen": _SEEN}),
    # each scenario's [target, params], in the run's order
    "prepare": ({"run": _RUN, "scenarios": List(Target(), MAX_SCENARIOS)}, {"seen": _SEEN}),
    "start": ({"run": _RUN, "plan": Map(64)}, {"seen": _SEEN}),
    # a new plan epoch from the instant at_s: each scenario from its first slot (0 for a model of
    # members) on, dealt by the weights; a runtime change gives some scenarios a new load model
    # (its profile the same up to at_s) and cap on calls in flight
    "epoch": (
        {
            "run": _RUN,
            "at_s": Number(0.0, 1e9),
            "weights": List(Number(0.0, MAX_CAPACITY, above=True), MAX_AGENTS),
            "index": Whole(0, MAX_AGENTS),
            "firsts": List(Whole(0, _SLOTS), MAX_SCENARIOS),
        },
        {"seen": _SEEN, "changes": List(_CHANGE, MAX_SCENARIOS)},
    ),
    "ack": ({"run": _RUN, "seq": _SEQ}, {"seen": _SEEN}),  # cumulative: every window of the run up to seq is in
    # stop at the instant at_s (each scenario at its slot due then), or at once; one scenario
    # (sc: its feed ran dry) or all
    "stop": (
        {"run": _RUN, "abort": Flag()},
        {"at_s": Number(0.0, 1e9), "sc": Whole(0, MAX_SCENARIOS - 1), "seen": _SEEN},
    ),
    "heartbeat": ({}, {"state": Text(16), "cpu": Number(0.0, 1e5), "seen": _SEEN}),
    "items": ({"run": _RUN, "sc": Whole(0, MAX_SCENARIOS - 1), "items": List(Item(), MAX_ITEMS)}, {"seen": _SEEN}),
}


@dataclass(frozen=True)
class Message:
    """A decoded message: its type and its checked fields (unknown ones dropped); ``record``
    is its typed form for the messages that have one (hello, window, done)."""

    type: str
    body: dict[str, Any]
    record: Any = None

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


def encode(type_: str, **fields: Any) -> bytes:
    """msgpack bytes of one message, checked against the schema (bugs fail at the sender)."""
    _checked(type_, fields)
    return msgpack.packb({"v": PROTOCOL_VERSION, "t": type_, **fields}, use_bin_type=True)


def refusal(reason: str, *, peer_version: Any, package: str) -> bytes:
    """The refusal envelope for a peer speaking ``peer_version`` (echoed, so it can read it)."""
    version = peer_version if isinstance(peer_version, int) and not isinstance(peer_version, bool) else PROTOCOL_VERSION
    body = {"v": version, "t": "refused", "reason": reason[:4096], "versions": [PROTOCOL_VERSION], "package": package}
    return msgpack.packb(body, use_bin_type=True)


def decode(frame: bytes) -> Message:
    """The message in ``frame`` with every field checked, or ``ProtocolError`` saying why not
    (``VersionMismatch`` for a well-formed message of another version)."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the {MAX_MESSAGE_BYTES} byte limit")
    try:
        body = msgpack.unpackb(frame, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"not a msgpack frame ({type(exc).__name__})") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"a message must be a map, got {type(body).__name__}")
    type_ = body.get("t")
    if type_ == "refused":  # the envelope: read whatever the version
        return _checked("refused", body)
    version = body.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise VersionMismatch(version, body.get("package"))
    msg = _checked(type_, body)
    typed = RECORDS.get(msg.type)
    return msg if typed is None else Message(msg.type, msg.body, typed(msg.body))


def _no_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("msgpack extension types are not accepted")


def _checked(type_: Any, body: Mapping[str, Any]) -> Message:
    if not isinstance(type_, str) or type_ not in SCHEMA:
        raise ProtocolError(f"unknown message type {type_!r}"[:200])
    required, optional = SCHEMA[type_]
    fields: dict[str, Any] = {}
    try:
        for key, check in required.items():
            if key not in body:
                raise ProtocolError(f"{type_} message without {key!r}")
            fields[key] = check.check(body[key], f"{type_}.{key}")
        for key, check in optional.items():
            if key in body and body[key] is not None:
                fields[key] = check.check(body[key], f"{type_}.{key}")
    except ProtocolError as exc:
        raise InvalidMessage(type_, exc.reason) from None
    return Message(type_, fields)
