"""Plan epochs, and where every planned slot of a farm run went.

A sharded run deals the farm's global slots among its agents by weight (``Shard``). When an
agent is lost or joins, a new *epoch* starts at a slot announced ahead; slots before it keep
the old plan. In every epoch each slot has exactly one owner, so the planned slots split
exactly among the agents, and for each agent

    planned = scheduled (what its windows counted) + unfired (what it owned and never fired)

which adds up to ``planned == scheduled + unfired`` for the run. Unfired slots are a lost
agent's share between its stop and the epoch that moved it (or, for one that never came back,
between its last report and that epoch), or the share of an agent that stopped before the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pusher_farm.core.schedule import Profile, Shard

__all__ = ["Epoch", "PlanBook", "Share", "planned_end"]


@dataclass(frozen=True)
class Epoch:
    """From global slot ``from_slot`` (``at_s`` seconds from the start) on, each owner fires
    the slots of its shard."""

    from_slot: int
    at_s: float
    owners: tuple[tuple[str, Shard], ...]  # (agent id, its shard)
    names: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Share:
    """Where one agent's planned slots went: ``planned == scheduled + unfired``; the unfired
    ones lay between ``from_s`` and ``to_s`` (seconds from the start)."""

    planned: int
    scheduled: int
    from_s: float | None = None
    to_s: float | None = None

    @property
    def unfired(self) -> int:
        return self.planned - self.scheduled


class PlanBook:
    """The epochs of one sharded run, and who owned which slots."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.epochs: list[Epoch] = []

    def open(
        self, agents: Sequence[tuple[str, str, float]], *, from_slot: int, at_s: float, reason: str
    ) -> list[Shard]:
        """A new epoch dealing slots from ``from_slot`` among ``agents`` ((id, name, capacity),
        in order); returns their shards in that order."""
        weights = tuple(capacity for _, _, capacity in agents)
        shards = [Shard(i, weights) for i in range(len(agents))]
        owners = tuple((agent_id, shard) for (agent_id, _, _), shard in zip(agents, shards, strict=True))
        names = tuple(name for _, name, _ in agents)
        self.epochs.append(Epoch(from_slot, at_s, owners, names, reason))
        return shards

    def owned(self, agent: str, upto: int) -> int:
        """How many of the slots below ``upto`` ``agent`` owned, over every epoch."""
        total = 0
        for i, epoch in enumerate(self.epochs):
            end = min(upto, self.epochs[i + 1].from_slot if i + 1 < len(self.epochs) else upto)
            for owner, shard in epoch.owners:
                if owner == agent:
                    total += shard.count(epoch.from_slot, end)
        return total

    def share_moved(self, agent: str) -> Epoch | None:
        """The epoch from which ``agent`` owned nothing any more (None: it kept a share)."""
        holds = False
        for epoch in self.epochs:
            owns = any(owner == agent for owner, _ in epoch.owners)
            if holds and not owns:
                return epoch
            holds = holds or owns
        return None

    def share(self, agent: str, *, planned_end: int, scheduled: int, reported_s: float, end_s: float) -> Share:
        """``agent``'s share of the slots below ``planned_end``; its unfired ones lie after
        ``reported_s`` (its stop, or the end of its last report) up to the epoch that moved
        its share, or ``end_s``."""
        planned = self.owned(agent, planned_end)
        if planned <= scheduled:
            return Share(planned, scheduled)
        moved = self.share_moved(agent)
        to_s = moved.at_s if moved is not None and moved.from_slot < planned_end else end_s
        return Share(planned, scheduled, reported_s, to_s)


def planned_end(
    profile: Profile, length: float, *, cut: bool, reaches: Sequence[int] = (), stop_s: float | None = None
) -> int:
    """The slot below which the run planned every slot: the whole profile; or, for a run the
    coordinator cut short, as far as its agents got (each reports the first slot it did not
    pass: told to stop at one slot, they all stop there), or else the slot due at the stop
    (``stop_s`` seconds from the start) when no agent said."""
    full = None if math.isinf(length) else profile.slot_count(length)
    if not cut and full is not None:
        return full
    if reaches:
        end = max(reaches)
    elif stop_s is not None:
        end = profile.first_slot_at(max(stop_s, 0.0))
    else:
        end = full if full is not None else 0
    return end if full is None else min(end, full)
