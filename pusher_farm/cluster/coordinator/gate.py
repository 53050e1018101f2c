"""The coordinator's gate: every frame is decoded and checked here before the state machine sees
it (``protocol``), and whatever is wrong with it is counted and dropped (a stranger's garbage),
or refused with a reason in the envelope every version reads (a peer of another version, or a
hello that is not valid). Nothing a peer sends is fatal; a flood of bad frames is logged at most
once per ``log_every`` seconds, and each stranger's refusal once."""

from __future__ import annotations

import math
from typing import Any

from pusher_farm.cluster.coordinator.actions import Action, Log, SendFrame
from pusher_farm.cluster.protocol.messages import (
    PROTOCOL_VERSION,
    InvalidMessage,
    Message,
    VersionMismatch,
    decode,
    refusal,
)
from pusher_farm.errors import ProtocolError

__all__ = ["MAX_IDENTITY", "Gate"]

#: the most strangers whose refusal is remembered (to log each once)
_STRANGERS = 10_000
#: the longest peer identity accepted (a ZeroMQ identity is at most 255 bytes; as text, with
#: undecodable bytes escaped, up to four times that)
MAX_IDENTITY = 1024


class Gate:
    """See the module docstring."""

    def __init__(self, package: str, log_every: float) -> None:
        self.package = package
        self.log_every = log_every
        #: frames dropped because they were not valid messages (whoever sent them)
        self.bad_frames = 0
        self._bad_since_log = 0
        self._bad_logged_at = -math.inf
        self._refused: set[str] = set()

    def decode(self, peer: str, frame: bytes, now: float, *, known: bool) -> tuple[Message | None, list[Action]]:
        """The message in ``frame`` from ``peer`` (``known``: an agent of this coordinator), or
        None and what to do about the frame."""
        if len(peer) > MAX_IDENTITY:
            return None, self.bad(f"a peer named with {len(peer)} characters", now)
        try:
            return decode(frame), []
        except VersionMismatch as exc:
            reason = (
                f"this coordinator speaks protocol {PROTOCOL_VERSION} (pusher-farm {self.package}); the agent "
                f"speaks protocol {exc.peer} (pusher-farm {exc.package or 'unknown'}): upgrade one side"
            )
            return None, self.refuse(peer, reason, exc.peer)
        except InvalidMessage as exc:
            if exc.type == "hello" and not known:
                return None, self.refuse(peer, f"invalid hello: {exc.reason}", None)
            return None, self.bad(f"from {peer!r}: {exc.reason}", now)
        except ProtocolError as exc:
            return None, self.bad(f"from {peer!r}: {exc.reason}", now)

    def refuse(self, peer: str, reason: str, version: Any) -> list[Action]:
        """Tell ``peer`` why it is turned away, in the envelope every version reads; log it
        once per peer."""
        actions: list[Action] = [SendFrame(peer, refusal(reason, peer_version=version, package=self.package))]
        if peer not in self._refused:
            if len(self._refused) >= _STRANGERS:
                self._refused.clear()
            self._refused.add(peer)
            actions.append(Log("error", f"refused {peer!r}: {reason}"))
        self.bad_frames += 1
        return actions

    def bad(self, reason: str, now: float) -> list[Action]:
        """Count a dropped frame; log at most once per ``log_every`` seconds."""
        self.bad_frames += 1
        self._bad_since_log += 1
        if now - self._bad_logged_at < self.log_every:
            return []
        count, self._bad_since_log, self._bad_logged_at = self._bad_since_log, 0, now
        return [Log("warning", f"coordinator dropped {count} bad frame(s); last: {reason}")]
