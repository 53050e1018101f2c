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

Work items (a run with a feed) flow under credit: an agent says how many items it wants to
hold (``want``: its credit, with the records of the items it finished), the coordinator hands
it at most that many beyond what it already holds (``items``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from pusher_farm.cluster.protocol_fields import (
    Anything,
    Field,
    Flag,
    Item,
    List,
    Map,
    Number,
    Record,
    Stage,
    Text,
    Versions,
    Whole,
)
from pusher_farm.errors import ProtocolError

__all__ = [
    "MAX_CAPACITY",
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "Message",
    "InvalidMessage",
    "VersionMismatch",
    "decode",
    "encode",
    "refusal",
]

#: 5: scenarios (a plan's scenarios, a prepare's targets, windows by scenario and call name,
#: reaches per scenario); 4: work items (want, items); 3: checked fields, the refusal envelope, package versions,
#: settings as one record, slot accounting (reach) and leases; 2: histograms travel as one
#: dense run of counts
PROTOCOL_VERSION = 5
#: larger frames are refused by the sockets and by ``decode`` (a window is a few KB)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: an agent's capacity (its weight in the farm's shares) lies in (0, MAX_CAPACITY]
MAX_CAPACITY = 1e6
#: the most agents one run can shard among
MAX_AGENTS = 100_000

_SLOTS = 1 << 53  # slot numbers and counters stay exact in a float


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
            "stopped_s": Number(),
            "reach": _SEQ,
            "elapsed_s": Number(0.0),
            "cpu": Number(0.0, 1e5),
            "gossip_dropped": _SEQ,
            "ran_s": Number(0.0),
            "error": _ERROR,
            "starved": _SEQ,
            "reaches": List(_SEQ, 64),
        },
    ),
    "bye": ({}, {}),
    "want": ({"run": _RUN, "credit": Whole(0, 1 << 20)}, {"fin": List(Record(), MAX_ITEMS)}),
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
    # a run of several scenarios: each one's [target, params] (the first is also target, params)
    "prepare": (
        {"run": _RUN, "target": Text(512, 1), "params": Map(256)},
        {"seen": _SEEN, "scenarios": List(List(Anything(), 2), 64)},
    ),
    "start": ({"run": _RUN, "plan": Map(64)}, {"seen": _SEEN}),
    "epoch": (
        {
            "run": _RUN,
            "from_slot": _SEQ,
            "weights": List(Number(0.0, MAX_CAPACITY, above=True), MAX_AGENTS),
            "index": Whole(0, MAX_AGENTS),
        },
        # a runtime change: the new profile (stages, the same as the old up to the change)
        # and cap on calls in flight
        {
            "seen": _SEEN,
            "profile": List(Stage(), 10_000),
            "overtime": Whole(0, 1_000_000),
            # a run of scenarios: the epoch's instant, each scenario's first slot (-1: users)
            "at_s": Number(0.0, 1e9),
            "from_slots": List(Whole(-1, 1 << 53), 64),
        },
    ),
    "ack": ({"run": _RUN, "seq": _SEQ}, {"seen": _SEEN}),  # cumulative: every window of the run up to seq is in
    "stop": ({"run": _RUN, "abort": Flag()}, {"at_slot": _SEQ, "at_s": Number(0.0, 1e9), "seen": _SEEN}),
    "heartbeat": ({}, {"state": Text(16), "cpu": Number(0.0, 1e5), "seen": _SEEN}),
    "items": ({"run": _RUN, "items": List(Item(), MAX_ITEMS)}, {"seen": _SEEN}),
}


@dataclass(frozen=True)
class Message:
    """A decoded message: its type and its checked fields (unknown ones dropped)."""

    type: str
    body: dict[str, Any]

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
    return _checked(type_, body)


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
