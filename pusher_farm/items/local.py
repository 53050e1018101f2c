"""Work items for a run in this process: the feed read here, the desk, the handlers.

``LocalItems`` opens the feed (checked before any load), makes the ``Desk`` the executor's
calls take their items from, passes each finished item to the ``Handlers`` (callbacks, the
results and dead-letter files, failure handlers), and sums it all up for the report.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pusher_farm.errors import InvalidOption
from pusher_farm.items.desk import Desk, FeedSupply
from pusher_farm.items.feeds import Feed, open_feed
from pusher_farm.items.handlers import Handlers
from pusher_farm.items.item import Work

__all__ = ["LocalItems", "about", "open_items", "resolve_handler"]


def resolve_handler(spec: Any) -> Callable[[dict[str, Any]], Any]:
    """A failure handler: a function as it is, a plugin's name, or ``module:function``
    imported on this host."""
    if callable(spec):
        return spec
    if ":" not in str(spec):
        from pusher_farm import plugins

        fn = plugins.load("failure handler", str(spec))
        if fn is None:
            known = ", ".join(["dead-letter (--dead-letter FILE)", *sorted(plugins.find("failure handler"))])
            raise InvalidOption(f"no failure handler named {spec!r}: known ones are {known}; or give module:function")
        return fn
    module, _, name = str(spec).partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidOption(f"failure handler {spec!r} cannot be imported here: {exc}") from None
    if not callable(fn):
        raise InvalidOption(f"failure handler {spec!r} is not a function")
    return fn


def open_items(config: Any) -> tuple[Feed, Handlers]:
    """The feed and the handlers ``config`` names, checked before any load."""
    feed = open_feed(config.feed)
    try:
        if config.feed_cycle and not feed.can_cycle:
            raise InvalidOption(f"feed {feed.name} can be read only once: it cannot cycle (drop --feed-cycle)")
        failure = [resolve_handler(h) for h in config.failure_handlers]
        handlers = Handlers(
            on_success=config.on_success,
            on_retry=config.on_retry,
            on_failure=config.on_failure,
            failure_records=failure,
            results=config.results,
            dead_letter=config.dead_letter,
        )
    except BaseException:
        feed.close()
        raise
    return feed, handlers


class LocalItems:
    """The items of one run in this process (``config``: a ``Config`` with a feed)."""

    def __init__(self, config: Any, ident: str) -> None:
        if config.feed is None:
            raise InvalidOption("work items need a feed: with_items(feed=...) or --feed FILE")
        self.ident = ident
        self.feed, self.handlers = open_items(config)
        self.desk = Desk(
            FeedSupply(self.feed.items(cycle=config.feed_cycle)),
            max_retries=config.max_retries,
            retry_delay=config.retry_delay,
            on_final=self._final,
            on_retry=self.handlers.retried,
        )
        self.closed_notes: list[str] = []

    def on_dry(self, fn: Callable[[], None]) -> None:
        self.desk.on_dry = fn

    def _final(self, item: Work, latency: float) -> None:
        record = item.record()
        record["latency_ms"] = round(latency * 1e3, 3)
        record["agent"] = self.ident
        self.feed.ack([item])
        self.handlers.final(record, item)

    def close(self) -> None:
        """Finish the handlers (every event delivered, files closed)."""
        self.closed_notes = self.handlers.close()
        self.feed.close()

    def summary(self) -> dict[str, Any]:
        return {**self.desk.summary(), **about(self.feed, self.handlers, self.closed_notes)}


def about(feed: Feed, handlers: Handlers, closed_notes: list[str]) -> dict[str, Any]:
    """What a report says of a run's feed and handlers (beside the counts of its items)."""
    return {
        "feed": feed.name,
        "malformed": feed.bad.count,
        "malformed_lines": [{"line": n, "reason": r} for n, r in feed.bad.first],
        "callbacks": handlers.counts(),
        "notes": [*feed.notes(), *closed_notes],
    }
