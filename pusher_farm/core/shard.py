"""Shards: the part of a farm's global slots one agent fires (smooth weighted round robin).

Every global slot has exactly one owner; equal agents alternate slot by slot, and any weights
interleave evenly (k6's execution segments are the model).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from pusher_farm.errors import InvalidOption

__all__ = ["Shard"]


@dataclass(frozen=True)
class Shard:
    """The part of the farm's global slots one agent fires.

    ``weights`` are the agents' shares (any positive numbers); ``index`` is this agent's.
    Slots are dealt in cycles by smooth weighted round robin, so arrivals interleave evenly:
    two equal agents alternate slot by slot. Every global slot has exactly one owner.
    """

    index: int
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.weights or any(not (w > 0 and math.isfinite(w)) for w in self.weights):
            raise InvalidOption("shard weights must be positive numbers")
        if not 0 <= self.index < len(self.weights):
            raise InvalidOption(f"shard index {self.index} out of range")

    @property
    def share(self) -> float:
        """This shard's part of every slot (its weight over the sum of weights)."""
        return self.weights[self.index] / sum(self.weights)

    def cycle(self) -> tuple[int, np.ndarray]:
        """(cycle length, this shard's offsets within a cycle)."""
        return _cycle(self.weights, self.index)

    @functools.cached_property
    def _owned(self) -> tuple[int, frozenset[int]]:
        period, offsets = self.cycle()
        return period, frozenset(offsets.tolist())

    def owns(self, k: int) -> bool:
        """Whether this shard owns global slot ``k`` (or member ``k``: user or lane)."""
        period, owned = self._owned
        return k % period in owned

    def count(self, lo: int, hi: int) -> int:
        """How many global slots in [lo, hi) this shard owns."""
        if hi <= lo:
            return 0
        period, offsets = self.cycle()

        def below(k: int) -> int:  # owned slots in [0, k)
            full, rest = divmod(k, period)
            return full * len(offsets) + int(np.count_nonzero(offsets < rest))

        return below(hi) - below(max(lo, 0))


def _integer_weights(weights: Sequence[float]) -> list[int]:
    # Relative to the largest, to 1/1000 of it; no weight rounds to 0 (its agent would own
    # no slot at all): a weight under a thousandth of the largest counts as a thousandth.
    top = max(weights)
    fractions = [max(Fraction(w / top).limit_denominator(1000), Fraction(1, 1000)) for w in weights]
    lcm = math.lcm(*(f.denominator for f in fractions))
    ints = [int(f * lcm) for f in fractions]
    g = math.gcd(*ints)
    ints = [i // g for i in ints]
    if sum(ints) > 100_000:  # keep the cycle table small; shares stay within 0.1%
        scale = 100_000 / sum(ints)
        ints = [max(1, round(i * scale)) for i in ints]
    return ints


@functools.lru_cache(maxsize=64)
def _owners(weights: tuple[float, ...]) -> np.ndarray:
    """The owner (agent index) of each position of one cycle, by smooth weighted round robin:
    at each position every agent gains its weight, the richest (the first on a tie) owns it
    and pays the total. Computed once per set of weights (every agent of a plan and the
    coordinator's accounting ask for the same)."""
    ints = _integer_weights(weights)
    total = sum(ints)
    owners = np.empty(total, dtype=np.int64)
    if len(ints) < 32:  # few agents: plain Python beats a numpy call per position
        current = [0] * len(ints)
        for pos in range(total):
            best = 0
            for j, w in enumerate(ints):
                current[j] += w
                if current[j] > current[best]:
                    best = j
            current[best] -= total
            owners[pos] = best
        return owners
    gain = np.array(ints, dtype=np.int64)
    current = np.zeros(len(ints), dtype=np.int64)
    for pos in range(total):
        current += gain
        best = int(np.argmax(current))
        current[best] -= total
        owners[pos] = best
    return owners


def _cycle(weights: tuple[float, ...], index: int) -> tuple[int, np.ndarray]:
    owners = _owners(weights)
    return len(owners), np.flatnonzero(owners == index).astype(np.int64)
