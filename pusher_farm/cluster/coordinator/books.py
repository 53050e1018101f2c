"""A farm run's epochs, and where every planned slot of each scenario went.

The run deals each scenario's global slots (and members) among its agents by weight
(``Shard``). When an agent is lost or joins, or the load changes at runtime, a new *epoch*
starts at one instant announced ahead; each scenario of slots starts it at its first slot due
then, and slots before it keep the old plan. In every epoch each slot has exactly one owner, so
a scenario's planned slots split exactly among the agents, and for each agent

    planned = scheduled (what its windows counted) + unfired (what it owned and never fired)

which adds up to ``planned == scheduled + unfired`` for the scenario and the run. Unfired slots
are a lost agent's share between its stop and the epoch that moved it (or, for one that never
came back, between its last report and that epoch), or the share of an agent that stopped
before the rest. A model of members (users, lanes) planned the calls it started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pusher_farm.core.epochs import owned_slots
from pusher_farm.core.shard import Shard

__all__ = ["FarmEpoch", "PlanBook", "Share"]


@dataclass(frozen=True)
class FarmEpoch:
    """From ``at_s`` seconds after the start (each scenario from its slot in ``firsts``) on,
    each owner fires its shard of every scenario."""

    at_s: float
    firsts: tuple[int, ...]
    owners: tuple[tuple[str, Shard], ...]  # (agent id, its shard)
    names: tuple[str, ...]
    reason: str

    @staticmethod
    def deal(agents: Sequence[tuple[str, str, float]]) -> tuple[tuple[tuple[str, Shard], ...], tuple[str, ...]]:
        """Owners and names of an epoch dealing among ``agents`` ((id, name, capacity), in order)."""
        weights = tuple(capacity for _, _, capacity in agents)
        owners = tuple((agent_id, Shard(i, weights)) for i, (agent_id, _, _) in enumerate(agents))
        return owners, tuple(name for _, name, _ in agents)


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
    """One scenario's view of the run's epochs: who owned which of its slots."""

    def __init__(self, epochs: list[FarmEpoch], index: int) -> None:
        self.epochs = epochs
        self.index = index

    def owned(self, agent: str, upto: int) -> int:
        """How many of the slots below ``upto`` ``agent`` owned, over every epoch."""
        epochs, i = self.epochs, self.index
        mine = []
        for n, epoch in enumerate(epochs):
            end = epochs[n + 1].firsts[i] if n + 1 < len(epochs) else upto
            mine += [(epoch.firsts[i], end, shard) for owner, shard in epoch.owners if owner == agent]
        return owned_slots(mine, 0, upto)

    def share_moved(self, agent: str) -> FarmEpoch | None:
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
        to_s = moved.at_s if moved is not None and moved.firsts[self.index] < planned_end else end_s
        return Share(planned, scheduled, reported_s, to_s)
