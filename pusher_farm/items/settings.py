"""Checks for the work-item settings of a run (the fields ``core.config.Config`` holds).

Each takes what a command line, a TOML file or Python gives and returns the value to keep, or
raises ``InvalidOption`` with a reason that says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pusher_farm.errors import InvalidOption

__all__ = ["MAX_PARALLEL", "MAX_RETRIES", "callbacks", "feed", "handlers", "path", "retries", "lanes"]

MAX_RETRIES = 1000
MAX_PARALLEL = 100_000


def _whole(name: str, value: Any, most: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(f"{name} must be a whole number, got {value!r}")
    if not 0 <= value <= most:
        raise InvalidOption(f"{name} must lie in 0..{most:,}, got {value:,}")
    return value


def retries(value: Any) -> int:
    return _whole("max_retries", value, MAX_RETRIES)


def lanes(value: Any) -> int:
    return _whole("parallel", value, MAX_PARALLEL)


def feed(value: Any) -> Any:
    """A feed: a file name (``-``: stdin), a ``Feed``, or an iterable of items; None: none."""
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        raise InvalidOption(f"a feed is a file name, '-' or an iterable of items, got {type(value).__name__}")
    return value


def path(name: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise InvalidOption(f"{name} must be a file name, got {value!r}")
        return value

    return check


def callbacks(name: str) -> Callable[[Any], tuple[Callable[..., Any], ...]]:
    def check(value: Any) -> tuple[Callable[..., Any], ...]:
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        for fn in value:
            if not callable(fn):
                raise InvalidOption(f"{name} takes functions of one work item, got {fn!r}")
        return value

    return check


def handlers(value: Any) -> tuple[Any, ...]:
    """Failure handlers: ``module:function`` names or functions of a failed item's record."""
    value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    for h in value:
        if not (callable(h) or (isinstance(h, str) and 0 < len(h) <= 512)):
            raise InvalidOption(f"a failure handler is a plugin's name, module:function or a function, got {h!r}")
    return value
