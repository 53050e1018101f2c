"""The coordinator's work items: handed to agents under credit, finished once, never lost.

Part of ``CoordinatorState`` (see ``state``), for a run with a feed. The decisions are the
``Dealer``'s (``items.dealer``): an agent's ``want`` hands in the records of the items it
finished (each counted once, whoever reports it first) and gets as many items as its credit
leaves room for; a lost agent's items go out again first. Once the feed is out and every item
is done, the run stops (rate mode: the feed ran dry; drain mode: the work is done), unless it
was cut already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pusher_farm.cluster.actions import Action, Finished, Log, Phase, Send
from pusher_farm.cluster.members import AgentRecord, AgentState
from pusher_farm.cluster.protocol import Message
from pusher_farm.items.dealer import Dealer

if TYPE_CHECKING:
    from pusher_farm.cluster.state import CoordinatorState

__all__ = ["MOST_CREDIT", "ItemsMixin", "credit_for"]

#: seconds of items an agent holds ahead at its share of the rate (rate mode)
_AHEAD_S = 0.5
_LEAST_CREDIT = 32
#: the most items one agent may hold, whatever it asks
MOST_CREDIT = 50_000


def credit_for(peak_rate: float, share: float, parallel: int) -> int:
    """Items an agent may hold: a few per lane (drain mode), or half a second at its share
    of the peak rate (rate mode)."""
    want = 4 * parallel if parallel else peak_rate * share * _AHEAD_S
    return int(min(max(want, _LEAST_CREDIT), MOST_CREDIT))


class ItemsMixin:
    dealer: Dealer | None
    #: seconds from the start at which the last item was done (None: not yet, or no feed)
    dry_s: float | None

    def init_items(self: CoordinatorState, dealer: Dealer | None) -> None:
        self.dealer = dealer
        self.dry_s = None

    def items_handlers(self: CoordinatorState) -> dict[str, Any]:
        return {"want": self._on_want}

    def _on_want(self: CoordinatorState, agent: AgentRecord, msg: Message, now: float) -> list[Action]:
        dealer = self.dealer
        if dealer is None or msg["run"] != self.run_id:
            return []
        done = [d for d in (dealer.finish(agent.id, r) for r in msg.get("fin", ())) if d is not None]
        actions: list[Action] = [Finished(done)] if done else []
        if agent.state is AgentState.RUNNING and self.phase is Phase.RUNNING and not self.cut:
            batch = dealer.deal(agent.id, min(msg["credit"], MOST_CREDIT))
            if batch:
                agent.last_sent = now
                actions.append(Send(agent.id, "items", {"run": self.run_id, "items": batch}))
        return actions + self._when_dry(now)

    def _when_dry(self: CoordinatorState, now: float) -> list[Action]:
        dealer = self.dealer
        if dealer is None or not dealer.dry or self.dry_s is not None or self.phase is not Phase.RUNNING:
            return []
        assert self.start_at is not None
        self.dry_s = max(0.0, now - self.start_at)
        if self.cut:
            return []
        what = "every item is done" if self.spec.drain else "the feed ran dry"
        return [Log("info", f"{what} at {self.dry_s:.2f} s: stopping the run"), *self.stop_reports(now, abort=False)]

    def items_lost(self: CoordinatorState, agent: AgentRecord) -> list[Action]:
        """``agent`` is lost, or done before the items were: the items it held (and never
        finished) go out again first."""
        if self.dealer is None:
            return []
        n = self.dealer.lose(agent.id)
        return [Log("warning", f"{agent.label()} held {n} unfinished items: they go to other agents")] if n else []
