"""The checks of ``Config``'s settings: each takes what a command line, a TOML file, a
``FARM_*`` variable or Python gives (numbers, and text such as "30s", "none", "4ms") and
returns the value to keep, or raises the setting's own error with a reason that says how to
fix it. Every default and bound of a setting is here or on its field, once."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from pusher_farm.core.gossip import Gossiper
from pusher_farm.core.load import Load
from pusher_farm.core.schedule import parse_duration
from pusher_farm.core.window import MAX_NAME, MAX_NAMES
from pusher_farm.errors import InvalidOption, InvalidOvertime, PusherError

#: the most calls in flight one process may be asked for
MAX_OVERTIME = 1_000_000
#: what losing an agent mid-run does (``on_agent_loss``)
LOSS_POLICIES = ("rebalance", "abort", "continue")

NONE = ("none", "off")
#: distinct call names a run keeps by default (past them, calls go under ``other``)
DEFAULT_MAX_NAMES = 1000


# -- checks: value in (number or text), normalised value out, or the setting's own error ------


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def seconds(name: str, value: Any, *, lowest: float, highest: float, zero: bool = False) -> float:
    """Seconds from a number or a duration text, within [lowest, highest] (0 too if ``zero``)."""
    span = f"{'0 or ' if zero and lowest > 0 else ''}between {text(lowest)} and {text(highest)}"
    if isinstance(value, str):
        try:
            value = parse_duration(value, allow_zero=True)
        except PusherError:
            raise InvalidOption(f"cannot read {name} {value!r}: give a duration {span}, e.g. 30s or 500ms") from None
    if not is_number(value) or not math.isfinite(value):
        raise InvalidOption(f"{name} must be a number of seconds {span}, got {value!r}")
    seconds = float(value)
    if zero and seconds == 0:
        return 0.0
    if not lowest <= seconds <= highest:
        raise InvalidOption(f"{name} must be {span}, got {value!r}")
    return seconds


def text(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds >= 1:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def overtime(value: Any) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOvertime(f"must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidOvertime(f"must be more or equal zero, got {value}")
    if value > MAX_OVERTIME:
        raise InvalidOvertime(f"must be at most {MAX_OVERTIME:,} calls in flight per process, got {value:,}")
    return value


def timeout(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in NONE):
        return None
    if (isinstance(value, str) and value.strip() in ("0", "0s")) or (is_number(value) and value == 0):
        raise InvalidOption("timeout must be positive (e.g. 30s), or none for no bound")
    return seconds("timeout", value, lowest=1e-6, highest=86_400.0)


def duration(value: Any) -> float | None:
    if value is None:
        return None
    return seconds("duration", value, lowest=1e-6, highest=366 * 86_400.0)


def window(value: Any) -> float:
    return seconds("window", value, lowest=0.01, highest=3600.0)


def spin(value: Any) -> float:
    return seconds("spin", value, lowest=0.0, highest=1.0, zero=True)


def batch(value: Any) -> float:
    return seconds("batch", value, lowest=0.0, highest=0.1, zero=True)


def load(value: Any) -> Load | None:
    if value is not None and not isinstance(value, Load):
        raise InvalidOption(f"a load model is Open, Closed or Drain, got {value!r}")
    return value


def name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable():
        raise InvalidOption(f"a scenario name is a short printable text (1 to {MAX_NAME} characters), got {value!r}")
    return value


def max_names(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    # a window holds them, the scenario's own name and "other"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NAMES - 2:
        raise InvalidOption(f"max_names must be a whole number in 1..{MAX_NAMES - 2:,}, got {value!r}")
    return value


def listeners(value: Any) -> tuple[Gossiper, ...]:
    listeners = tuple(value)
    for listener in listeners:
        if not (callable(getattr(listener, "listen", None)) and callable(getattr(listener, "stop", None))):
            raise InvalidOption(f"{listener!r} is not a Gossiper: it needs listen(worker, gossips) and stop()")
    return listeners


def capacity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(f"gossip_capacity must be a positive whole number, got {value!r}")
    return value


def target(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 512:
        raise InvalidOption(f"a target name is a built-in or package.module:function, got {value!r}")
    return value


#: what a target parameter may hold: plain data only (it may cross the wire)
PLAIN = (str, int, float, bool, type(None))


def params(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or len(value) > 256:
        raise InvalidOption(f"target parameters must be a mapping of names to values, got {value!r}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 128:
            raise InvalidOption(f"a target parameter name must be a short text, got {key!r}")
        items = item if isinstance(item, (list, tuple)) else [item]
        if len(items) > 1024 or not all(isinstance(i, PLAIN) for i in items):
            raise InvalidOption(f"target parameter {key!r} must be plain text, numbers or a list of them")
        if any(isinstance(i, str) and len(i) > 1 << 20 for i in items):
            raise InvalidOption(f"target parameter {key!r} is over 1 MiB")
        out[key] = list(item) if isinstance(item, (list, tuple)) else item
    return MappingProxyType(out)


def policy(value: Any) -> str:
    if value not in LOSS_POLICIES:
        raise InvalidOption(f"on_agent_loss must be one of {', '.join(LOSS_POLICIES)}, got {value!r}")
    return str(value)


def flag(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidOption(f"{name} must be true or false, got {value!r}")
        return value

    return check


def finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no infinity: an open-ended stage
    reads ``[null, rate, rate]``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    return value


def named(value: Any) -> Any:
    """``value`` as plain data: functions and other objects by their name."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [named(v) for v in value]
    name = getattr(value, "__qualname__", None)
    return f"{getattr(value, '__module__', '')}:{name}" if name else f"<{type(value).__name__}>"
