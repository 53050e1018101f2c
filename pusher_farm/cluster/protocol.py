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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

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


class _Field:
    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError


class _Text(_Field):
    def __init__(self, most: int = 256, least: int = 0) -> None:
        self.most, self.least = most, least

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise ProtocolError(f"{where} must be text, got {type(value).__name__}")
        if not self.least <= len(value) <= self.most:
            raise ProtocolError(f"{where} must be {self.least} to {self.most} characters, got {len(value)}")
        return value


class _Whole(_Field):
    def __init__(self, lo: int = 0, hi: int = _SLOTS) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where} must be a whole number, got {type(value).__name__}")
        if not self.lo <= value <= self.hi:
            raise ProtocolError(f"{where} must be within [{self.lo}, {self.hi}], got {value}")
        return value


class _Number(_Field):
    """A finite number within [lo, hi] (``above``: strictly more than lo)."""

    def __init__(self, lo: float = -1e15, hi: float = 1e15, *, above: bool = False) -> None:
        self.lo, self.hi, self.above = lo, hi, above

    def check(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{where} must be a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ProtocolError(f"{where} must be finite, got {value}")
        low_ok = value > self.lo if self.above else value >= self.lo
        if not (low_ok and value <= self.hi):
            raise ProtocolError(
                f"{where} must be within {'(' if self.above else '['}{self.lo:g}, {self.hi:g}], got {value:g}"
            )
        return value


class _Flag(_Field):
    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false, got {type(value).__name__}")
        return value


class _Map(_Field):
    """A map kept as is: its receiver checks what is inside (settings, windows)."""

    def __init__(self, most: int = 4096) -> None:
        self.most = most

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > self.most:
            raise ProtocolError(f"{where} must be a map of at most {self.most} entries")
        return value


class _List(_Field):
    def __init__(self, item: _Field, most: int) -> None:
        self.item, self.most = item, most

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) > self.most:
            raise ProtocolError(f"{where} must be a list of at most {self.most} items")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


class _Maybe(_Field):
    def __init__(self, inner: _Field) -> None:
        self.inner = inner

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)


class _Versions(_Field):
    """Package names and their versions: at most 32, short texts both."""

    def check(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > 32:
            raise ProtocolError(f"{where} must be a map of at most 32 package versions")
        for k, v in value.items():
            if not (isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 64 and len(v) <= 64):
                raise ProtocolError(f"{where} must map package names to versions (short texts)")
        return value


class _Stage(_Field):
    """A profile stage ``[duration, from, to]``: the last may last forever (inf)."""

    def check(self, value: Any, where: str) -> list[float]:
        if not isinstance(value, list) or len(value) != 3:
            raise ProtocolError(f"{where} must be [duration, from, to]")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise ProtocolError(f"{where} must hold numbers")
        duration, start, end = (float(x) for x in value)
        if (
            not (duration > 0)
            or math.isnan(duration)
            or not all(math.isfinite(r) and 0 <= r <= 1e9 for r in (start, end))
        ):
            raise ProtocolError(f"{where} must be a positive duration and finite rates >= 0")
        return [duration, start, end]


class _Any(_Field):
    """Plain data of any shape (an item's body, a target's result): the frame bounds its size."""

    def check(self, value: Any, where: str) -> Any:
        return value


class _Item(_Field):
    """A work item handed to an agent: ``[seq, id, body]``."""

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) != 3:
            raise ProtocolError(f"{where} must be [seq, id, body]")
        return [_SEQ.check(value[0], f"{where}.seq"), _Text(1024).check(value[1], f"{where}.id"), value[2]]


class _Record(_Field):
    """A finished item, as an agent reports it."""

    _FIELDS: ClassVar[dict[str, _Field]] = {}

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where} must be a map")
        out = {}
        for key, field in self._FIELDS.items():
            if key in value and value[key] is not None:
                out[key] = field.check(value[key], f"{where}.{key}")
        for key in ("seq", "status", "attempts"):
            if key not in out:
                raise ProtocolError(f"{where} without {key!r}")
        if out["status"] not in ("success", "failure"):
            raise ProtocolError(f"{where}.status must be success or failure")
        return out


_RUN = _Text(64, 1)
_TIME = _Number()  # a clock reading in seconds (monotonic clocks start anywhere)
_SEQ = _Whole()
_PACKAGE = _Text(64, 1)
_ERROR = _Text(4096)
_SEEN = _Number(0.0, 1e6)
_Record._FIELDS = {
    "seq": _SEQ,
    "status": _Text(16),
    "attempts": _Whole(1, 1 << 20),
    "error": _ERROR,
    "result": _Any(),
    "retries": _List(_ERROR, 1 << 20),
    "latency_ms": _Number(0.0, 1e12),
}
#: most items or records in one message
MAX_ITEMS = 4096

# type -> (required fields, optional fields)
SCHEMA: dict[str, tuple[dict[str, _Field], dict[str, _Field]]] = {
    # agent -> coordinator
    "hello": (
        {
            "name": _Text(200, 1),
            "host": _Text(255),
            "pid": _Whole(0, 1 << 32),
            "capacity": _Number(0.0, MAX_CAPACITY, above=True),
            "cpus": _Whole(1, 1 << 20),
            "package": _PACKAGE,
        },
        {"python": _Text(32), "deps": _Versions()},
    ),
    "pong": ({"id": _Whole(), "t0": _TIME, "t1": _TIME, "t2": _TIME}, {}),
    "ready": ({"run": _RUN}, {}),
    "refuse": ({"run": _RUN, "error": _ERROR}, {"kind": _Text(64)}),
    "window": ({"run": _RUN, "seq": _SEQ, "w": _Map(64)}, {}),
    "done": (
        {"run": _RUN, "windows": _SEQ, "stopped_early": _Flag()},
        {
            "sent_s": _Number(0.0),
            "stopped_s": _Number(),
            "reach": _SEQ,
            "elapsed_s": _Number(0.0),
            "cpu": _Number(0.0, 1e5),
            "gossip_dropped": _SEQ,
            "ran_s": _Number(0.0),
            "error": _ERROR,
            "starved": _SEQ,
            "reaches": _List(_SEQ, 64),
        },
    ),
    "bye": ({}, {}),
    "want": ({"run": _RUN, "credit": _Whole(0, 1 << 20)}, {"fin": _List(_Record(), MAX_ITEMS)}),
    # coordinator -> agent: each may say how long ago the coordinator last heard the agent
    # ("seen"), which renews the agent's lease
    "welcome": (
        {
            "agent": _Text(1024, 1),
            "package": _PACKAGE,
            "heartbeat": _Number(0.01, 60.0),
            "lease": _Number(0.05, 3600.0),
        },
        {"seen": _SEEN},
    ),
    # "v" is kept: a refusal from a peer that predates the envelope carries its own version there
    "refused": ({"reason": _ERROR}, {"v": _Whole(0, 1 << 31), "versions": _List(_Whole(), 16), "package": _PACKAGE}),
    "ping": ({"id": _Whole(), "t0": _TIME}, {"seen": _SEEN}),
    # a run of several scenarios: each one's [target, params] (the first is also target, params)
    "prepare": (
        {"run": _RUN, "target": _Text(512, 1), "params": _Map(256)},
        {"seen": _SEEN, "scenarios": _List(_List(_Any(), 2), 64)},
    ),
    "start": ({"run": _RUN, "plan": _Map(64)}, {"seen": _SEEN}),
    "epoch": (
        {
            "run": _RUN,
            "from_slot": _SEQ,
            "weights": _List(_Number(0.0, MAX_CAPACITY, above=True), MAX_AGENTS),
            "index": _Whole(0, MAX_AGENTS),
        },
        # a runtime change: the new profile (stages, the same as the old up to the change)
        # and cap on calls in flight
        {
            "seen": _SEEN,
            "profile": _List(_Stage(), 10_000),
            "overtime": _Whole(0, 1_000_000),
            # a run of scenarios: the epoch's instant, each scenario's first slot (-1: users)
            "at_s": _Number(0.0, 1e9),
            "from_slots": _List(_Whole(-1, 1 << 53), 64),
        },
    ),
    "ack": ({"run": _RUN, "seq": _SEQ}, {"seen": _SEEN}),  # cumulative: every window of the run up to seq is in
    "stop": ({"run": _RUN, "abort": _Flag()}, {"at_slot": _SEQ, "at_s": _Number(0.0, 1e9), "seen": _SEEN}),
    "heartbeat": ({}, {"state": _Text(16), "cpu": _Number(0.0, 1e5), "seen": _SEEN}),
    "items": ({"run": _RUN, "items": _List(_Item(), MAX_ITEMS)}, {"seen": _SEEN}),
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
