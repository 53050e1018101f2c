"""The schedule: when every slot is due. Pure functions of the rate profile, no clock.

A rate profile r(t) is piecewise linear. Slot k is due at the time t_k at which the integral of
r from the start reaches k (slot 0 at t = 0). Times are absolute offsets from one common start,
never "sleep one period", so nothing drifts and fractional rates are exact: 0.5 rps fires at
0 s, 2 s, 4 s, ...

A shard owns a subset of the farm's global slot numbers (``Shard``); every process computes the
same t_k for the same k, so the farm's combined arrivals interleave exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pusher_farm.core.shard import Shard
from pusher_farm.errors import InvalidOption, InvalidRPS

__all__ = [
    "MAX_STAGES",
    "Constant",
    "Profile",
    "Stage",
    "Stages",
    "parse_duration",
    "parse_stages",
    "profile_from_stages",
    "slot_batches",
]


#: the most stages a profile may have
MAX_STAGES = 10_000


@dataclass(frozen=True)
class Stage:
    """``duration`` seconds during which the rate moves linearly from ``start`` to ``end``."""

    duration: float
    start: float
    end: float

    @property
    def slots(self) -> float:
        return self.duration * (self.start + self.end) / 2


class Profile:
    """A piecewise-linear rate profile. ``Constant`` and ``Stages`` are the two shapes."""

    stages: tuple[Stage, ...]
    #: total length in seconds; ``math.inf`` for an open-ended constant rate.
    duration: float

    def __init__(self, stages: Sequence[Stage]) -> None:
        if not stages:
            raise InvalidOption("a rate profile needs at least one stage")
        for s in stages:
            for rate in (s.start, s.end):
                if not (math.isfinite(rate) and rate >= 0):
                    raise InvalidRPS(f"stage rates must be finite and >= 0, got {rate:g}")
            if not (s.duration > 0):
                raise InvalidOption(f"stage durations must be positive, got {s.duration:g}s")
        if all(s.start == 0 and s.end == 0 for s in stages):
            raise InvalidRPS("every stage has rate 0: nothing would ever be sent")
        self.stages = tuple(stages)
        self.duration = sum(s.duration for s in stages)
        starts = np.cumsum([0.0] + [s.duration for s in stages])
        areas = np.cumsum([0.0] + [s.slots for s in stages])
        self._t0 = starts[:-1]
        self._n0 = areas[:-1]
        self._n_end = areas[1:]
        self._r0 = np.array([s.start for s in stages])
        self._slope = np.array([(s.end - s.start) / s.duration for s in stages])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and type(other) is type(self) and other.stages == self.stages

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.stages))

    def length(self) -> float:
        """How long a run of this profile lasts (``inf``: open-ended)."""
        return self.duration

    @property
    def begins(self) -> float:
        """Seconds before the first moment its rate is above 0 (a scenario that starts later
        begins with a stage at 0)."""
        elapsed = 0.0
        for s in self.stages:
            if s.start > 0 or s.end > 0:
                return elapsed
            elapsed += s.duration
        return elapsed

    @property
    def peak(self) -> float:
        """The highest rate it reaches."""
        return max(max(s.start, s.end) for s in self.stages)

    def cut(self, seconds: float | None) -> Profile:
        """This profile until ``seconds`` from its start (None, or past its end: itself)."""
        if seconds is None or seconds >= self.duration:
            return self
        return _profile(self._upto(seconds))

    def scaled(self, factor: float) -> Profile:
        """The same shape with every rate times ``factor`` (``force``: amount workers)."""
        return _profile([Stage(s.duration, s.start * factor, s.end * factor) for s in self.stages])

    def _upto(self, at_s: float) -> list[Stage]:
        kept: list[Stage] = []
        elapsed = 0.0
        for s in self.stages:
            if elapsed + s.duration <= at_s:
                kept.append(s)
                elapsed += s.duration
                continue
            part = at_s - elapsed
            if part > 0:
                kept.append(Stage(part, s.start, s.start + (s.end - s.start) * part / s.duration))
            break
        return kept

    def slots_until(self, t: float) -> float:
        """The integral of the rate over [0, t]: how many slots are due before ``t``."""
        t = min(t, self.duration)
        i = max(int(np.searchsorted(self._t0, t, side="right")) - 1, 0)
        tau = t - self._t0[i]
        return float(self._n0[i] + self._r0[i] * tau + self._slope[i] * tau * tau / 2)

    def rate_at(self, t: float) -> float:
        if t < 0 or t >= self.duration:
            return 0.0
        i = max(int(np.searchsorted(self._t0, t, side="right")) - 1, 0)
        return float(self._r0[i] + self._slope[i] * (t - self._t0[i]))

    def times(self, ks: np.ndarray) -> np.ndarray:
        """Due time t_k (seconds from start) of each slot number; ``inf`` past the profile."""
        ks = np.asarray(ks, dtype=np.float64)
        i = np.searchsorted(self._n_end, ks, side="right")
        past = i >= len(self.stages)
        i = np.minimum(i, len(self.stages) - 1)
        m = ks - self._n0[i]
        b = self._r0[i]
        a = self._slope[i] / 2
        # Solve a*tau^2 + b*tau = m in the stable form 2m / (b + sqrt(b^2 + 4am)).
        disc = np.sqrt(np.maximum(b * b + 4 * a * m, 0.0))
        denom = b + disc
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(m > 0, 2 * m / denom, 0.0)
        out = self._t0[i] + tau
        out[past] = np.inf
        return out

    def first_slot_at(self, t: float) -> int:
        """The first slot number k with t_k >= t (seconds from the start)."""
        k = max(math.ceil(self.slots_until(max(t, 0.0))), 0)
        while k > 0 and self.times(np.array([k - 1]))[0] >= t:
            k -= 1
        while self.times(np.array([k]))[0] < t:
            k += 1
        return k

    def slot_count(self) -> int:
        """Number of slots due over the whole profile."""
        end = self.duration
        if math.isinf(end):
            raise InvalidOption("an open-ended profile has no slot count; give a duration")
        n = self.slots_until(end)
        k = math.ceil(n)
        # Float rounding can put slot k a hair on either side of ``end``; the times decide.
        while k > 0 and self.times(np.array([k - 1]))[0] >= end:
            k -= 1
        while self.times(np.array([k]))[0] < end:
            k += 1
        return k

    def average_rate(self, seconds: float) -> float:
        """Slots per second over the first ``seconds`` of the profile."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return 0.0
        return self.slots_until(seconds) / seconds

    def then(self, at_s: float, rate: float) -> Profile:
        """This profile until ``at_s`` seconds, then ``rate`` (0 or more) to its end: the same
        slots at the same times before ``at_s`` (a farm changing its rate mid-run keeps every
        slot it planned so far), the new rate after."""
        if not (math.isfinite(rate) and rate >= 0):
            raise InvalidRPS(f"must be a finite number >= 0, got {rate:g}")
        if not 0 < at_s < self.duration:
            raise InvalidOption(f"a change at {at_s:g}s is outside the profile (0 to {self.duration:g}s)")
        if len(self.stages) >= MAX_STAGES - 1:
            raise InvalidOption(f"a profile holds {MAX_STAGES} stages at most: no more changes in this run")
        return Stages([*self._upto(at_s), Stage(self.duration - at_s, rate, rate)])

    def describe(self) -> str:
        if isinstance(self, Constant):
            return f"{self.rate:g} rps"
        return ", ".join(
            f"{s.duration:g}s:{s.start:g}" + ("" if s.start == s.end else f"-{s.end:g}") for s in self.stages
        )


class Constant(Profile):
    """A constant rate, for ``duration`` seconds (or open-ended with ``None``)."""

    def __init__(self, rate: float, duration: float | None = None) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise InvalidRPS(f"must be a number, got {rate!r}")
        if not (math.isfinite(rate) and rate > 0):
            raise InvalidRPS(f"must be positive and finite, got {rate:g}")
        if duration is not None and not (duration > 0):
            raise InvalidOption(f"duration must be positive, got {duration:g}s")
        self.rate = float(rate)
        super().__init__([Stage(math.inf if duration is None else duration, rate, rate)])

    def times(self, ks: np.ndarray) -> np.ndarray:
        out = np.asarray(ks, dtype=np.float64) / self.rate
        out[out >= self.duration] = np.inf
        return out

    def slots_until(self, t: float) -> float:
        return min(t, self.duration) * self.rate

    def average_rate(self, seconds: float) -> float:
        return self.rate


class Stages(Profile):
    """Piecewise-linear stages, e.g. ramp 0→1000 over 30 s, hold 60 s, ramp down over 10 s."""


def slot_batches(
    profile: Profile,
    *,
    shard: Shard | None = None,
    first: int = 0,
    batch: int = 4096,
) -> Iterator[tuple[list[int], list[float]]]:
    """Yield (slot numbers, due times) in order, in batches, for slots due before the profile's
    end. ``first`` is the first global slot number considered; ``shard`` keeps only owned slots.
    """
    end = profile.duration
    if shard is not None:
        period, offsets = shard.cycle()
    else:
        period, offsets = 1, np.zeros(1, dtype=np.int64)
    if not len(offsets):
        return  # a shard that owns no slot (cannot happen with positive weights; never spin)
    per_batch = max(1, batch // max(len(offsets), 1))
    cycle = first // period
    while True:
        ks = (np.arange(cycle, cycle + per_batch, dtype=np.int64)[:, None] * period + offsets).ravel()
        ks = ks[ks >= first]
        ts = profile.times(ks)
        keep = ts < end
        if not keep.all():
            cut = int(np.argmin(keep))
            if cut:
                yield ks[:cut].tolist(), ts[:cut].tolist()
            return
        yield ks.tolist(), ts.tolist()
        cycle += per_batch


def profile_from_stages(stages: object) -> Profile:
    """The profile of ``[[duration, from, to], ...]`` (``Profile.stages`` as plain data): a
    ``Constant`` for one flat stage, else ``Stages``. ``InvalidOption`` for anything else."""
    if not isinstance(stages, (list, tuple)) or not 0 < len(stages) <= MAX_STAGES:
        raise InvalidOption(f"a profile is a list of 1 to {MAX_STAGES} stages [duration, from, to]")
    parsed = []
    for s in stages:
        if not (
            isinstance(s, (list, tuple))
            and len(s) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in s)
        ):
            raise InvalidOption(f"a stage is [duration, from, to] in seconds and calls per second, got {s!r}")
        parsed.append(Stage(float(s[0]), float(s[1]), float(s[2])))
    if any(math.isinf(s.duration) for s in parsed[:-1]) or any(math.isnan(s.duration) for s in parsed):
        raise InvalidOption("only the last stage of a profile may be open-ended")
    if math.isinf(parsed[-1].duration) and parsed[-1].start != parsed[-1].end:
        raise InvalidOption("an open-ended stage must hold a constant rate")
    return _profile(parsed)


def _profile(stages: Sequence[Stage]) -> Profile:
    """A ``Constant`` for one flat stage, else ``Stages``."""
    if len(stages) == 1 and stages[0].start == stages[0].end:
        only = stages[0]
        return Constant(only.start, None if math.isinf(only.duration) else only.duration)
    return Stages(stages)


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|h|m|s)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int, *, allow_zero: bool = False) -> float:
    """'30s', '1m30s', '500ms', '2h' or a plain number of seconds → seconds (> 0, or >= 0
    with ``allow_zero``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        try:
            seconds = float(s)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(s):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(s) or not s:
                raise InvalidOption(f"cannot read duration {text!r}: use e.g. 30s, 1m30s, 500ms or 2h") from None
    if not (math.isfinite(seconds) and (seconds > 0 or (allow_zero and seconds == 0))):
        raise InvalidOption(f"duration must be positive, got {text!r}")
    return seconds


def parse_stages(text: str) -> Stages:
    """'30s:0-1000,60s:1000,10s:1000-0' → Stages (duration:rate or duration:from-to)."""
    stages = []
    for part in str(text).split(","):
        part = part.strip()
        dur, sep, rates = part.partition(":")
        if not sep or not rates:
            raise InvalidOption(
                f"cannot read stage {part!r}: use DURATION:RATE or DURATION:FROM-TO, e.g. 30s:0-1000,60s:1000"
            )
        lo, dash, hi = rates.partition("-")
        try:
            start = float(lo)
            end = float(hi) if dash else start
        except ValueError:
            raise InvalidOption(f"cannot read the rate in stage {part!r}: use e.g. 30s:0-1000") from None
        stages.append(Stage(parse_duration(dur), start, end))
    return Stages(stages)
