"""Feeds: where work items come from. A Python iterable, a JSONL or CSV file, or stdin.

Every feed is read lazily, one item at a time, so a feed of any size costs the memory of the
items in flight only. A malformed line (JSONL) or row (CSV) is counted with its line number
and skipped; the rest goes on (``Feed.bad``). ``open_feed`` turns a command line's text into a
feed: ``items.jsonl`` (also ``.ndjson``, ``.json``), ``items.csv``, ``-`` (JSONL on stdin),
``redis://host:port/db?list=NAME`` (``redis_feed``: a Redis list, taken reliably).

An item from a map takes its ``id`` from the map's ``id`` (else its line number); its body is
the map's ``body`` when that is all the map holds besides ``id``, else the whole map (so every
field stays there for ``{field}`` placeholders). Any other value is the body of an item
numbered by its place.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from pusher_farm.errors import InvalidOption
from pusher_farm.items.item import Work

__all__ = ["BadLines", "CsvFeed", "Feed", "IterableFeed", "JsonlFeed", "item_of", "open_feed"]

#: malformed lines listed by number in the report (all are counted)
_BAD_LISTED = 20
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}


class BadLines:
    """Malformed lines of a feed: how many, and the first few with their line and reason."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[tuple[int, str]] = []

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.first) < _BAD_LISTED:
            self.first.append((line, reason[:200]))


def item_of(value: Any, place: int) -> Work:
    """A work item from one entry of a feed (see the module docstring)."""
    if isinstance(value, Work):
        return value
    if isinstance(value, dict):
        ident = value.get("id", place)
        body = value["body"] if "body" in value and len(value.keys() - {"id"}) == 1 else value
        return Work(str(ident), body)
    return Work(str(place), value)


class Feed:
    """Work items from a source, once through, or over and over with ``cycle`` (a source that
    can only be read once, such as stdin or a generator, cannot cycle)."""

    def __init__(self, name: str, *, can_cycle: bool) -> None:
        self.name = name
        self.can_cycle = can_cycle
        self.bad = BadLines()

    def _items(self) -> Iterator[Work]:
        raise NotImplementedError

    def items(self, *, cycle: bool = False) -> Iterator[Work]:
        if cycle and not self.can_cycle:
            raise InvalidOption(f"feed {self.name} can be read only once: it cannot cycle (drop --feed-cycle)")
        if not cycle:
            yield from self._items()
            return
        while True:
            empty = True
            for item in self._items():
                empty = False
                yield item
            if empty:
                return  # nothing to cycle over

    def close(self) -> None:
        """Let go of what the feed holds open (a file)."""

    def ack(self, items: list[Work]) -> None:
        """These items are done (a feed that must be told, such as a Redis list, is)."""

    def notes(self) -> list[str]:
        """What the report must say about the feed (a source that went away, ...)."""
        return []


class IterableFeed(Feed):
    """Items from a Python iterable: a list cycles, a generator is read once."""

    def __init__(self, source: Iterable[Any], name: str = "iterable") -> None:
        super().__init__(name, can_cycle=not isinstance(source, Iterator))
        self.source = source

    def _items(self) -> Iterator[Work]:
        for place, value in enumerate(self.source, 1):
            yield item_of(value, place)


class JsonlFeed(Feed):
    """One JSON value per line (blank lines skipped) from a file, or from a stream once."""

    def __init__(self, path: str | None, stream: IO[str] | None = None) -> None:
        super().__init__(path or "stdin", can_cycle=stream is None)
        self.path = path
        self.stream = stream

    def _items(self) -> Iterator[Work]:
        if self.stream is not None:
            yield from self._parse(self.stream)
            return
        assert self.path is not None
        with open(self.path, encoding="utf-8", errors="replace") as f:
            yield from self._parse(f)

    def _parse(self, lines: Iterable[str]) -> Iterator[Work]:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                self.bad.add(number, f"not JSON: {exc}")
                continue
            yield item_of(value, number)


class CsvFeed(Feed):
    """One item per row of a CSV file whose first row names the fields (a map per row)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, can_cycle=True)
        self.path = path

    def _items(self) -> Iterator[Work]:
        with open(self.path, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                self.bad.add(1, f"not CSV: {exc}")
                return
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    self.bad.add(reader.line_num, f"not CSV: {exc}")
                    continue
                if not row:
                    continue
                if len(row) != len(header):
                    self.bad.add(reader.line_num, f"{len(row)} fields where the header names {len(header)}")
                    continue
                yield item_of(dict(zip(header, row, strict=True)), reader.line_num)


def open_feed(spec: str | Iterable[Any]) -> Feed:
    """The feed ``spec`` names (see the module docstring), checked now: an unreadable file or
    an unknown kind is an ``InvalidOption`` saying what to give instead."""
    if isinstance(spec, Feed):
        return spec
    if not isinstance(spec, str):
        if isinstance(spec, Iterable):
            return IterableFeed(spec)
        raise InvalidOption(f"a feed is a file name, '-' or an iterable of items, got {spec!r}")
    if spec == "-":
        return JsonlFeed(None, sys.stdin)
    from pusher_farm.items.redis_feed import RedisFeed, is_redis

    if is_redis(spec):
        return RedisFeed(spec)
    name, sep, argument = spec.partition(":")
    if sep and name and not os.path.exists(spec):
        from pusher_farm import plugins

        made = plugins.load("feed", name)
        if made is not None:
            return open_feed(made(argument))
    kind = _SUFFIXES.get(Path(spec).suffix.lower())
    if kind is None:
        from pusher_farm import plugins

        known = "".join(f", {n}:ARGUMENT" for n in sorted(plugins.find("feed")))
        raise InvalidOption(
            f"feed {spec!r}: give a .jsonl (.ndjson, .json), .csv file, - for JSONL on stdin, "
            f"redis://HOST:PORT/DB?list=NAME{known}"
        )
    if not os.path.isfile(spec) or not os.access(spec, os.R_OK):
        reason = "does not exist" if not os.path.exists(spec) else "is not a readable file"
        raise InvalidOption(f"feed {spec!r} {reason}")
    return CsvFeed(spec) if kind == "csv" else JsonlFeed(spec)
