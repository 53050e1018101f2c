"""The dealer: a farm's work items handed to agents under credit, and taken back.

Pure (the feed is an iterator given to it; no I/O of its own), so a coordinator's decisions on
items are tested without sockets. Each item handed out gets a number (``seq``) that stays with
it: an agent lost mid-run gives its items back (``lose``) and they go out again first, under
the same number. A finished item is counted once, whoever reports it first: a lost agent that
comes back and reports an item another agent has done since is a duplicate, dropped. So the
results hold every item exactly once, although a lost agent's items may have been *worked on*
twice (the price of never losing one).

``deal(agent, credit)`` hands ``agent`` as many items as it wants to hold beyond those it
holds (its credit), at most ``MAX_DEAL`` at once and about ``DEAL_BYTES`` of bodies. The run is
``dry`` once the feed is out and no item is held or waiting to go out again.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import msgpack

from pusher_farm.items.item import Status, Work

__all__ = ["DEAL_BYTES", "LEAST_CREDIT", "MAX_DEAL", "MOST_CREDIT", "Dealer", "credit_within"]

MAX_DEAL = 4096
#: retry reasons listed in a summary at most (the most frequent)
_REASONS = 100
DEAL_BYTES = 1 << 20


#: items an agent may hold at least and at most, whatever its load asks for
LEAST_CREDIT = 32
MOST_CREDIT = 50_000


def credit_within(want: float) -> int:
    """The items an agent may hold when its load wants ``want``: within the farm's bounds."""
    return int(min(max(want, LEAST_CREDIT), MOST_CREDIT))


#: the largest item body handed to an agent (a message holds at most 4 MiB)
MAX_BODY = 1 << 20
#: the longest item id
MAX_ID = 1024


def _size(body: Any) -> int | None:
    """Bytes ``body`` takes on the wire; None when it is not plain data msgpack can carry."""
    if body is None or isinstance(body, (float, bool)):
        return 8
    if isinstance(body, str):
        return len(body) + 8
    try:
        return len(msgpack.packb(body, use_bin_type=True)) + 8
    except (TypeError, ValueError, OverflowError):
        return None


class Dealer:
    """See the module docstring."""

    def __init__(self, items: Iterator[Work]) -> None:
        self._items = items
        self._next: Work | None = None
        self.exhausted = False
        #: hand out nothing for now (the handlers of finished items are behind: see central)
        self.paused = False
        #: items that could not be handed out (id too long, body too large or not plain data)
        self.refused = 0
        self.refused_first: list[str] = []
        self._read()
        self._seq = 0
        #: items out (held by an agent, or waiting to go out again), by seq
        self.outstanding: dict[int, Work] = {}
        self._holder: dict[int, str] = {}
        self._held: Counter[str] = Counter()
        self._back: deque[int] = deque()
        self.handed = 0
        self.reissued = 0
        self.duplicates = 0
        self.by_status: Counter[str] = Counter()
        self.attempts: Counter[int] = Counter()
        self.retries = 0
        self.retry_reasons: Counter[str] = Counter()
        #: finished items by the agent that reported them
        self.by_agent: Counter[str] = Counter()

    def _read(self) -> None:
        """The next item an agent can be given: one whose id or body could not cross the wire
        is set aside, counted in ``refused`` with its reason."""
        while True:
            item = next(self._items, None)
            if item is None:
                self._next = None
                self.exhausted = True
                return
            size = _size(item.body)
            if size is not None and size <= MAX_BODY and len(item.id) <= MAX_ID:
                item.size = size
                self._next = item
                return
            self.refused += 1
            if len(self.refused_first) < _REASONS // 10:
                what = (
                    "its id is over 1024 characters"
                    if len(item.id) > MAX_ID
                    else ("its body is over 1 MiB" if size is not None else "its body is not plain data (JSON-like)")
                )
                self.refused_first.append(f"item {item.id[:64]!r}: {what}")

    @property
    def dry(self) -> bool:
        return self.exhausted and not self.outstanding

    def held(self, agent: str) -> int:
        return self._held[agent]

    def deal(self, agent: str, credit: int) -> list[list[Any]]:
        """Items for ``agent`` (``[seq, id, body]`` each), up to its ``credit``."""
        if self.paused:
            return []
        n = min(credit - self._held[agent], MAX_DEAL)
        out: list[list[Any]] = []
        budget = DEAL_BYTES
        while n > 0 and budget > 0:
            seq = self._take_back()
            if seq is None:
                item = self._next
                if item is None:
                    break
                self._read()
                seq = self._seq
                self._seq += 1
                self.outstanding[seq] = item
                self.handed += 1
            else:
                item = self.outstanding[seq]
            self._holder[seq] = agent
            self._held[agent] += 1
            out.append([seq, item.id, item.body])
            budget -= item.size + len(item.id)
            n -= 1
        return out

    def _take_back(self) -> int | None:
        while self._back:
            seq = self._back.popleft()
            if seq in self.outstanding and seq not in self._holder:
                return seq
        return None

    def lose(self, agent: str) -> int:
        """``agent`` is gone: its items go out again first. How many it held."""
        seqs = sorted(seq for seq, holder in self._holder.items() if holder == agent)
        for seq in seqs:
            del self._holder[seq]
        self._back.extendleft(reversed(seqs))
        self._held[agent] = 0
        self.reissued += len(seqs)
        return len(seqs)

    def finish(self, agent: str, record: dict[str, Any]) -> tuple[Work, dict[str, Any]] | None:
        """An agent finished an item (``record``: checked by the protocol): the item and its
        full record (body, id and agent filled in), or None for a duplicate."""
        seq = record["seq"]
        item = self.outstanding.pop(seq, None)
        if item is None:
            self.duplicates += 1
            return None
        holder = self._holder.pop(seq, None)
        if holder is not None:
            self._held[holder] -= 1
        status = Status(record["status"])
        item.status = status
        item.attempts = record["attempts"]
        item.retries = list(record.get("retries") or [])
        if status is Status.SUCCESS:
            item.result = record.get("result")
        else:
            item.error = record.get("error") or "unknown"
        self.by_status[status.value] += 1
        self.attempts[item.attempts] += 1
        self.retries += len(item.retries)
        for reason in item.retries:
            reasons = self.retry_reasons
            reasons[reason if reason in reasons or len(reasons) < _REASONS else "other reasons"] += 1
        self.by_agent[agent] += 1
        full = item.record()
        if "latency_ms" in record:
            full["latency_ms"] = record["latency_ms"]
        full["agent"] = agent
        return item, full

    def summary(self) -> dict[str, Any]:
        return {
            "taken": self.handed,
            "by_status": dict(self.by_status),
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "retries": self.retries,
            "retries_by_reason": dict(self.retry_reasons.most_common(_REASONS)),
            "reissued": self.reissued,
            "duplicates_dropped": self.duplicates,
            "refused": self.refused,
            "refused_first": list(self.refused_first),
            "unprocessed": len(self.outstanding),
            "by_agent": dict(self.by_agent),
            "dry": self.dry,
        }
