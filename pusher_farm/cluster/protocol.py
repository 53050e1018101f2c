"""The farm's messages: typed, versioned msgpack maps. Knows nothing of sockets.

Every message is a map ``{"v": PROTOCOL_VERSION, "t": TYPE, ...fields}``. ``decode`` turns
bytes into a ``Message`` or raises ``ProtocolError`` (never anything else), so a transport can
log and drop what is not ours. Only plain data crosses the wire: msgpack with no extension
types, never pickle; a target travels as a *name* the agent resolves on its own host.

Agent → coordinator:  hello, pong, ready, refuse, window, done, heartbeat, bye
Coordinator → agent:  welcome, refused, ping, prepare, start, epoch, ack, stop, heartbeat
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from pusher_farm.errors import ProtocolError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "Message",
    "VersionMismatch",
    "decode",
    "encode",
]

PROTOCOL_VERSION = 2  # 2: histograms travel as one dense run of counts
#: larger frames are refused by the sockets and by ``decode`` (a window is a few KB)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# type -> required fields and their types (extra fields are allowed: newer peers may add them)
_NUM = (int, float)
SCHEMA: dict[str, dict[str, Any]] = {
    # agent -> coordinator
    "hello": {"name": str, "host": str, "pid": int, "capacity": _NUM, "cpus": int},
    "pong": {"id": int, "t0": _NUM, "t1": _NUM, "t2": _NUM},
    "ready": {"run": str},
    "refuse": {"run": str, "error": str},
    "window": {"run": str, "seq": int, "w": dict},
    "done": {"run": str, "windows": int, "stopped_early": bool},
    "heartbeat": {},
    "bye": {},
    # coordinator -> agent
    "welcome": {"agent": str},
    "refused": {"reason": str},
    "ping": {"id": int, "t0": _NUM},
    "prepare": {"run": str, "target": str, "params": dict},
    "start": {"run": str, "plan": dict},
    "epoch": {"run": str, "from_slot": int, "weights": list, "index": int},
    "ack": {"run": str, "seq": int},  # cumulative: every window of the run up to seq is in
    "stop": {"run": str, "abort": bool},
}


class VersionMismatch(ProtocolError):
    """A peer speaks another protocol version."""

    kind = "protocol version mismatch"


@dataclass(frozen=True)
class Message:
    type: str
    body: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.body[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


def encode(type_: str, **fields: Any) -> bytes:
    """msgpack bytes of one message (checked against the schema, so bugs fail at the sender)."""
    if type_ not in SCHEMA:
        raise ProtocolError(f"unknown message type {type_!r}")
    body = {"v": PROTOCOL_VERSION, "t": type_, **fields}
    _check(type_, body)
    return msgpack.packb(body, use_bin_type=True)


def decode(frame: bytes) -> Message:
    """The message in ``frame``, or ``ProtocolError`` saying why it is not one."""
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
    version = body.get("v")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(f"peer speaks protocol version {version!r}, this side speaks {PROTOCOL_VERSION}")
    type_ = body.get("t")
    if not isinstance(type_, str) or type_ not in SCHEMA:
        raise ProtocolError(f"unknown message type {type_!r}")
    _check(type_, body)
    return Message(type_, body)


def _no_ext(code: int, data: bytes) -> Any:
    raise ProtocolError("msgpack extension types are not accepted")


def _check(type_: str, body: dict[str, Any]) -> None:
    for key, kind in SCHEMA[type_].items():
        if key not in body:
            raise ProtocolError(f"{type_} message without {key!r}")
        value = body[key]
        if isinstance(value, bool) and kind is not bool:
            raise ProtocolError(f"{type_}.{key} has the wrong type (bool)")
        if not isinstance(value, kind):
            raise ProtocolError(f"{type_}.{key} has the wrong type ({type(value).__name__})")
