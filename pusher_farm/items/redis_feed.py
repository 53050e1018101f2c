"""A Redis list as a feed, taken reliably.

``redis://host:port/db?list=NAME`` (also ``rediss://``; ``list`` defaults to ``items``). The
coordinator is the list's one consumer: it moves each item it takes, atomically, to a
processing list of its own (``NAME:processing``; ``LMOVE``), hands it to an agent under credit
like any other item, and removes it from the processing list (``LREM``) once an agent has
finished it. So an item is always on one of the two lists until it is done: an agent lost
mid-run gives its items back to the dealer (done once, by another agent), and items a
coordinator held when it died are still on the processing list, moved back to the front of
the list by the next run that starts on it.

Each list entry is one JSON value (like a JSONL line; a malformed one is counted and left on
the processing list for a person to look at). Redis down at the start is a clear error before
any load; Redis going away mid-run ends the feed (the run stops as if it ran dry) and the
report says so, with the items it could not acknowledge (they stay on the processing list:
the next run takes them back, so they may be done twice).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pusher_farm.errors import InvalidOption
from pusher_farm.items.feeds import Feed, item_of
from pusher_farm.items.item import Work

__all__ = ["RedisFeed", "is_redis"]

#: items moved from the list per round trip
_BATCH = 64
#: seconds a Redis command may take before Redis counts as gone
_TIMEOUT = 2.0


def is_redis(spec: str) -> bool:
    return spec.startswith(("redis://", "rediss://", "unix://"))


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError:
        raise InvalidOption("a Redis feed needs the redis package: pip install 'pusher-farm[redis]'") from None
    # A short timeout: a Redis that stops answering holds up the coordinator (and its heartbeats)
    # for at most this long before the feed gives up on it.
    try:
        return redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
    except ValueError as exc:
        raise InvalidOption(f"cannot read the Redis address {url!r}: {exc}") from None


class RedisFeed(Feed):
    """See the module docstring."""

    def __init__(self, spec: str) -> None:
        parts = urlsplit(spec)
        names = parse_qs(parts.query).get("list", ["items"])
        self.list = names[0]
        if not self.list:
            raise InvalidOption(f"feed {spec!r}: list= names the Redis list, e.g. redis://127.0.0.1:6379/0?list=jobs")
        self.processing = f"{self.list}:processing"
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("list="))
        self.url = parts._replace(query=query).geturl()
        super().__init__(f"{parts.scheme}://{parts.netloc}{parts.path} list {self.list}", can_cycle=False)
        self.redis = _client(self.url)
        import redis

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        try:
            self.redis.ping()
            self.recovered = self._recover()
        except self._errors as exc:
            raise InvalidOption(f"cannot reach Redis at {self.url}: {exc}") from None
        self.error: str | None = None
        self.taken = 0
        self.acked = 0
        self.unacked = 0

    def _recover(self) -> int:
        """Items an earlier run took and never finished go back to the front of the list."""
        n = 0
        while self.redis.lmove(self.processing, self.list, "RIGHT", "LEFT") is not None:
            n += 1
        return n

    def _items(self) -> Iterator[Work]:
        line = 0
        while self.error is None:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for _ in range(_BATCH):
                    pipe.lmove(self.list, self.processing, "LEFT", "RIGHT")
                got = [raw for raw in pipe.execute() if raw is not None]
            except self._errors as exc:
                self.error = f"Redis at {self.url} went away after {self.taken} items: {exc}"
                return
            if not got:
                return
            for raw in got:
                line += 1
                self.taken += 1
                try:
                    value = json.loads(raw)
                except ValueError as exc:
                    self.bad.add(line, f"not JSON (left on {self.processing}): {exc}")
                    continue
                item = item_of(value, line)
                item.source = raw
                yield item

    def ack(self, items: list[Work]) -> None:
        """These items are done: off the processing list."""
        raws = [item.source for item in items if item.source is not None]
        if not raws:
            return
        if self.error is not None:  # gone: do not wait on it again for every batch
            self.unacked += len(raws)
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for raw in raws:
                pipe.lrem(self.processing, 1, raw)
            self.acked += sum(pipe.execute())
        except self._errors as exc:
            self.unacked += len(raws)
            if self.error is None:
                self.error = f"Redis at {self.url} went away: {exc}"

    def close(self) -> None:
        try:
            self.redis.close()
        except self._errors:
            pass

    def notes(self) -> list[str]:
        out = [self.error] if self.error else []
        if self.unacked:
            out.append(
                f"{self.unacked} finished items could not be taken off {self.processing}: a next run takes them back"
            )
        if self.recovered:
            out.append(f"{self.recovered} items an earlier run had taken went back onto {self.list} first")
        return out
