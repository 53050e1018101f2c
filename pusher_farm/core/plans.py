"""The plan epochs of one executor: from which global slot which shard is fired, and where a
halt ends the run. Pure functions on a sorted list of (first slot, shard)."""

from __future__ import annotations

import math

from pusher_farm.core.shard import Shard

__all__ = ["HALT", "add_epoch", "plan_at"]

#: an epoch that fires nothing: the run stops at its first slot (``stop_at``)
HALT = "halt"


def plan_at(epochs: list[tuple[int, Shard | str | None]], k: int) -> tuple[Shard | str | None, float]:
    """The shard in force at global slot ``k`` among ``epochs`` ((first slot, shard), sorted:
    the last epoch from at most ``k``; a ``HALT`` from at most ``k`` is final) and the slot at
    which the next epoch takes over."""
    current: Shard | str | None = None
    boundary = math.inf
    for first, shard in epochs:
        if first <= k:
            current = shard
            if shard is HALT:
                return HALT, math.inf
        else:
            boundary = first
            break
    return current, boundary


def add_epoch(epochs: list[tuple[int, Shard | str | None]], from_slot: int, shard: Shard | str | None) -> None:
    """Add a plan epoch to ``epochs`` (kept sorted). A new plan supersedes any earlier-announced
    one from the same slot on; a ``HALT`` is never superseded."""
    if shard is not HALT:
        epochs[:] = [(f, s) for f, s in epochs if f < from_slot or s is HALT]
    epochs.append((from_slot, shard))
    epochs.sort(key=lambda e: (e[0], e[1] is HALT))
