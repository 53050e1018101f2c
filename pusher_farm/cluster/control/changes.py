"""The runtime changes the HTTP side takes, read from request bodies: ``PATCH /farm`` (a
scenario's rate, users, drain lanes or cap on calls in flight) and Gofherd's ``PATCH /herd
{"num": N}`` (the drain's lanes: its herd size). A body that is not valid raises ``ValueError``
saying what is wrong with it (answered 400, changing nothing); whether the run can take a valid
change is the coordinator's to say."""

from __future__ import annotations

import json
import math
from typing import Any

from pusher_farm.core.load.closed import MAX_USERS
from pusher_farm.core.load.drain import MAX_PARALLEL
from pusher_farm.core.load.open import MOST_RPS
from pusher_farm.core.setting_checks import MAX_OVERTIME
from pusher_farm.core.window import MAX_NAME

__all__ = ["farm_changes", "herd_change"]

#: the whole numbers a change may set, and their bounds
_WHOLE = {"users": MAX_USERS, "parallel": MAX_PARALLEL, "overtime": MAX_OVERTIME}
_KEYS = ("scenario", "rps", *_WHOLE)
_FORM = '{"rps": R}, {"users": N}, {"parallel": N} and/or {"overtime": N}, with "scenario": NAME in a run of several'


def _object(body: bytes, form: str) -> dict[str, Any]:
    if not body.strip():
        raise ValueError(f"an empty body changes nothing: send {form}")
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"send a JSON object: {form}")
    return data


def _whole(key: str, value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValueError(f"{key} must be a whole number from 0 to {most}, got {value!r}")
    return value


def farm_changes(body: bytes) -> dict[str, Any]:
    """The changes a ``PATCH /farm`` body asks for (keys: ``scenario``, ``rps``, ``users``,
    ``parallel``, ``overtime``)."""
    data = _object(body, _FORM)
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: a run changes {', '.join(_KEYS[1:])} at runtime")
    out: dict[str, Any] = {}
    scenario = data.get("scenario")
    if scenario is not None:
        if not isinstance(scenario, str) or not 0 < len(scenario) <= MAX_NAME:
            raise ValueError(f"scenario must be a scenario's name, got {scenario!r}")
        out["scenario"] = scenario
    if "rps" in data:
        rps = data["rps"]
        try:  # NaN fails the bounds below; an integer too large for a float is over them
            value = float(rps) if isinstance(rps, (int, float)) and not isinstance(rps, bool) else math.nan
        except OverflowError:
            value = math.inf
        if not 0 < value <= MOST_RPS:
            raise ValueError(f"rps must be a number above 0 and at most {MOST_RPS:g}, got {rps!r}")
        out["rps"] = value
    for key, most in _WHOLE.items():
        if key in data:
            out[key] = _whole(key, data[key], most)
    if not set(out) - {"scenario"}:
        raise ValueError(f"nothing to change: send {_FORM}")
    return out


def herd_change(body: bytes) -> int:
    """The herd size a ``PATCH /herd`` body asks for (Gofherd's ``{"num": N}``)."""
    data = _object(body, '{"num": N}')
    unknown = sorted(set(data) - {"num"})
    if unknown:
        raise ValueError(f'unknown key {unknown[0]!r}: send {{"num": N}}')
    if "num" not in data:
        raise ValueError('send {"num": N}: the number of lanes')
    return _whole("num", data["num"], MAX_PARALLEL)
