"""The checked fields of protocol messages: each ``check`` returns the value or raises
``ProtocolError`` naming where it was (a peer's frame is never trusted)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pusher_farm.errors import ProtocolError

__all__ = [
    "Field",
    "Anything",
    "Flag",
    "Item",
    "List",
    "Map",
    "Maybe",
    "Number",
    "Record",
    "Shape",
    "Stage",
    "Target",
    "Text",
    "Versions",
    "Whole",
]

_SLOTS = 1 << 53  # slot numbers and counters stay exact in a float


class Field:
    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError


class Text(Field):
    def __init__(self, most: int = 256, least: int = 0) -> None:
        self.most, self.least = most, least

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise ProtocolError(f"{where} must be text, got {type(value).__name__}")
        if not self.least <= len(value) <= self.most:
            raise ProtocolError(f"{where} must be {self.least} to {self.most} characters, got {len(value)}")
        return value


class Whole(Field):
    def __init__(self, lo: int = 0, hi: int = _SLOTS) -> None:
        self.lo, self.hi = lo, hi

    def check(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where} must be a whole number, got {type(value).__name__}")
        if not self.lo <= value <= self.hi:
            raise ProtocolError(f"{where} must be within [{self.lo}, {self.hi}], got {value}")
        return value


class Number(Field):
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


class Flag(Field):
    def check(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false, got {type(value).__name__}")
        return value


class Map(Field):
    """A map kept as is: its receiver checks what is inside (settings, windows)."""

    def __init__(self, most: int = 4096) -> None:
        self.most = most

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or len(value) > self.most:
            raise ProtocolError(f"{where} must be a map of at most {self.most} entries")
        return value


class List(Field):
    def __init__(self, item: Field, most: int) -> None:
        self.item, self.most = item, most

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) > self.most:
            raise ProtocolError(f"{where} must be a list of at most {self.most} items")
        return [self.item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]


class Maybe(Field):
    def __init__(self, inner: Field) -> None:
        self.inner = inner

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)


class Versions(Field):
    """Package names and their versions: at most 32, short texts both."""

    def check(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict) or len(value) > 32:
            raise ProtocolError(f"{where} must be a map of at most 32 package versions")
        for k, v in value.items():
            if not (isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 64 and len(v) <= 64):
                raise ProtocolError(f"{where} must map package names to versions (short texts)")
        return value


class Stage(Field):
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


class Anything(Field):
    """Plain data of any shape (an item's body, a target's result): the frame bounds its size."""

    def check(self, value: Any, where: str) -> Any:
        return value


class Item(Field):
    """A work item handed to an agent: ``[seq, id, body]``."""

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) != 3:
            raise ProtocolError(f"{where} must be [seq, id, body]")
        return [Whole().check(value[0], f"{where}.seq"), Text(1024).check(value[1], f"{where}.id"), value[2]]


class Record(Field):
    """A finished item, as an agent reports it."""

    _FIELDS: ClassVar[dict[str, Field]] = {}

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


class Target(Field):
    """A scenario's target: ``[name, parameters]`` (the agent builds it on its own host)."""

    def check(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or len(value) != 2:
            raise ProtocolError(f"{where} must be [target name, parameters]")
        return [Text(512, 1).check(value[0], f"{where}.name"), Map(256).check(value[1], f"{where}.params")]


class Shape(Field):
    """A map of known fields, each checked (``required`` must be there; unknown ones dropped)."""

    def __init__(self, required: dict[str, Field], optional: dict[str, Field] | None = None) -> None:
        self.required, self.optional = required, optional or {}

    def check(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where} must be a map")
        out = {}
        for key, field in self.required.items():
            if key not in value:
                raise ProtocolError(f"{where} without {key!r}")
            out[key] = field.check(value[key], f"{where}.{key}")
        for key, field in self.optional.items():
            if key in value and value[key] is not None:
                out[key] = field.check(value[key], f"{where}.{key}")
        return out
