"""The coordinator's work items: handed to agents under credit, finished once, never lost.

Each scenario with a feed has its ``Dealer`` (``items.dealer``): an agent's ``want`` for that
scenario hands in the records of the items it finished (each counted once, whoever reports it
first) and gets as many items as its credit leaves room for; a lost agent's items go out again
first. Once a scenario's feed is out and every item is done, that scenario is *dry*: the router
stops it (a drain: its work is done; rate mode: the feed ran dry), unless the run was cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pusher_farm.cluster.coordinator.actions import Action, Finished, Log, Send
from pusher_farm.cluster.coordinator.membership import AgentRecord
from pusher_farm.items.dealer import MOST_CREDIT, Dealer

__all__ = ["Dealing"]


class Dealing:
    """The dealers of a run's scenarios with a feed, by the scenario's position."""

    def __init__(self, run_id: str, dealers: Mapping[int, Dealer]) -> None:
        self.run_id = run_id
        self.dealers = dict(dealers)
        #: seconds from the start at which each scenario's items were all done
        self.dry_s: dict[int, float] = {}

    def want(
        self, agent: AgentRecord, scenario: int, credit: int, finished: list[dict[str, Any]], now: float, *, deal: bool
    ) -> list[Action]:
        """``agent`` hands in ``finished`` records and wants ``credit`` items of ``scenario``
        (dealt only when ``deal``: it runs and the run goes on)."""
        dealer = self.dealers.get(scenario)
        if dealer is None:
            return []
        done = [d for d in (dealer.finish(agent.id, r) for r in finished) if d is not None]
        actions: list[Action] = [Finished(scenario, done)] if done else []
        if deal:
            batch = dealer.deal(agent.id, min(credit, MOST_CREDIT))
            if batch:
                agent.last_sent = now
                actions.append(Send(agent.id, "items", {"run": self.run_id, "sc": scenario, "items": batch}))
        return actions

    def newly_dry(self, since_start: float) -> list[int]:
        """The scenarios whose items all got done since last asked (their time noted)."""
        dry = [i for i, d in self.dealers.items() if d.dry and i not in self.dry_s]
        for i in dry:
            self.dry_s[i] = since_start
        return dry

    def lost(self, agent: AgentRecord) -> list[Action]:
        """``agent`` is lost, or done before the items were: the items it held (and never
        finished) go out again first."""
        n = sum(d.lose(agent.id) for d in self.dealers.values())
        return [Log("warning", f"{agent.label()} held {n} unfinished items: they go to other agents")] if n else []
