"""The plan one executor follows: its epochs, each from one instant (and, for a model of
slots, from one global slot) on, with the shard it fires; a halt ends the run there.

Pure: a sorted list of ``Epoch`` records and the questions the pacers ask of it. A model of
slots (the open model) asks which shard holds slot ``k`` and where the next epoch takes over;
a model of members (users, drain lanes) asks whose members are this executor's at time ``t``.
Epochs never go back: the coordinator announces each no earlier than the one before it, in
time and in slots. One that arrives late supersedes every later-announced plan from the same
point on (as the coordinator's books say), but never a halt, which is final.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pusher_farm.core.shard import Shard

__all__ = ["HALT", "Epoch", "Plan", "owned_slots", "spans"]


class _Halt:
    """The shard of an epoch that fires nothing: the run stops there."""

    def __repr__(self) -> str:
        return "HALT"


HALT = _Halt()


@dataclass(frozen=True)
class Epoch:
    """From ``at_s`` seconds after the start (and global slot ``first``, for a model of slots)
    this executor fires the slots (or runs the members) of ``shard``: ``None`` for all of them,
    ``HALT`` for none (the run stops)."""

    at_s: float
    first: int
    shard: Shard | _Halt | None


def owned_slots(spans: Iterable[tuple[int, float, Shard | None]], lo: int, hi: int) -> int:
    """How many global slots in [lo, hi) the shards of ``spans`` own: ``(first, end, shard)``,
    each shard in force over [first, end) (``None``: every slot)."""
    total = 0
    for first, end, shard in spans:
        start, stop = max(first, lo), min(hi, end)
        if stop > start:
            total += int(stop - start) if shard is None else shard.count(start, int(stop))
    return total


def spans(epochs: list[tuple[int, Shard | None]]) -> list[tuple[int, float, Shard | None]]:
    """``(first, shard)`` epochs in slot order as spans: each in force up to the next one's first."""
    return [(f, epochs[i + 1][0] if i + 1 < len(epochs) else math.inf, s) for i, (f, s) in enumerate(epochs)]


class Plan:
    """The epochs of one executor (see the module docstring). It starts with one: from
    ``from_s`` (slot ``first``) on, the members or slots of ``shard``; nothing before."""

    def __init__(self, shard: Shard | None = None, *, first: int = 0, from_s: float = 0.0) -> None:
        self.first = first
        self.from_s = from_s
        self.epochs: list[Epoch] = [Epoch(from_s, first, shard)]
        #: how many epochs were added (a pacer notices a new plan by it)
        self.version = 0

    def add(self, epoch: Epoch) -> None:
        """A new epoch: it supersedes any earlier-announced one from its point on; a halt is
        never superseded, and an epoch after a halt changes nothing."""
        if epoch.shard is not HALT:
            self.epochs = [e for e in self.epochs if e.shard is HALT or (e.at_s, e.first) < (epoch.at_s, epoch.first)]
        self.epochs.append(epoch)
        self.epochs.sort(key=lambda e: (e.at_s, e.first, e.shard is HALT))
        self.version += 1

    def at_slot(self, k: int) -> tuple[Shard | _Halt | None, float]:
        """The shard in force at global slot ``k`` (``HALT`` once a halt is at or before it)
        and the slot at which the next epoch takes over (``inf``: none)."""
        current: Shard | _Halt | None = None
        for e in self.epochs:
            if e.first <= k:
                if e.shard is HALT:
                    return HALT, math.inf
                current = e.shard
            else:
                return current, e.first
        return current, math.inf

    def halt_slot(self) -> int | None:
        """The slot of the first halt (None: no halt)."""
        return min((e.first for e in self.epochs if e.shard is HALT), default=None)

    def at_time(self, t: float) -> Shard | _Halt | bool | None:
        """The shard whose members are this executor's at ``t`` seconds from the start:
        ``HALT`` from a halt on, ``False`` before the first epoch (nothing is ours yet)."""
        current: Shard | _Halt | bool | None = False
        for e in self.epochs:
            if e.at_s > t:
                break
            if e.shard is HALT:
                return HALT
            current = e.shard
        return current

    def halt_s(self) -> float:
        """When the first halt falls (``inf``: none)."""
        return min((e.at_s for e in self.epochs if e.shard is HALT), default=math.inf)

    def owned(self, lo: int, hi: int) -> int:
        """How many global slots in [lo, hi) this plan gave this executor (a halt ends it)."""
        halt = self.halt_slot()
        if halt is not None:
            hi = min(hi, halt)
        kept = [(e.first, e.shard) for e in self.epochs if e.shard is not HALT]
        return owned_slots(spans(kept), max(lo, self.first), hi)  # type: ignore[arg-type]
