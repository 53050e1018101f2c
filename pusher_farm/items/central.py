"""Work items for a farm run, on its coordinator: the feed read there, the dealer that hands
items to agents, and the handlers every finished item goes to (callbacks, the results and
dead-letter files, failure handlers), in one place whatever the agents."""

from __future__ import annotations

from typing import Any

from pusher_farm.items.dealer import Dealer
from pusher_farm.items.item import Work
from pusher_farm.items.local import about, open_items

__all__ = ["CentralItems"]

#: events a handler lane may have waiting before the dealer pauses (half its queue)
_BEHIND = 32_768


class CentralItems:
    """The items of a farm run (``config``: the run's ``Config``, with a feed)."""

    def __init__(self, config: Any) -> None:
        self.feed, self.handlers = open_items(config)
        self.dealer = Dealer(self.feed.items(cycle=config.feed_cycle))
        self.closed_notes: list[str] = []

    def pace(self) -> None:
        """Hand out no more items while a handler lane is over half full: the agents finish what
        they hold (a bounded number of records), and the coordinator's thread never blocks on
        a full lane while the lanes catch up."""
        self.dealer.paused = self.handlers.backlog() > _BEHIND

    def finished(self, done: list[tuple[Work, dict[str, Any]]]) -> None:
        """Items finished on agents, each once: to the handlers (an ``on_retry`` callback
        hears of an item's retries when it ends, the agents being elsewhere)."""
        self.feed.ack([item for item, _ in done])
        for item, record in done:
            for _ in item.retries:
                self.handlers.retried(item)
            self.handlers.final(record, item)

    def close(self) -> None:
        self.closed_notes = self.handlers.close()
        self.feed.close()

    def summary(self) -> dict[str, Any]:
        return {**self.dealer.summary(), **about(self.feed, self.handlers, self.closed_notes)}
