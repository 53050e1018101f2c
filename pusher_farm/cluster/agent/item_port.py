"""An agent's work items for one scenario of a run: the desk its executor takes them from,
filled by the coordinator, and the records of finished items waiting to be handed in.

The executor's loop takes items and settles them (``Desk``); the control thread puts what the
coordinator hands over (``give``) and collects the mail (``mail``: the credit to ask for and
the records to hand in). A deque between them: appends and pops are atomic.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import msgpack

from pusher_farm.core.config import Config
from pusher_farm.items.desk import BufferSupply, Desk
from pusher_farm.items.item import Status, Work, plain

__all__ = ["ItemPort"]

#: records handed in per message at most, and about this many bytes of them
_BATCH = 4096
_BATCH_BYTES = 1 << 20
#: an agent holds enough items for this long at the pace it finishes them (more for a fast
#: target, so the exchange with the coordinator never starves it), at most _MOST_CREDIT
_AHEAD_S = 0.2
_MOST_CREDIT = 50_000
#: a result larger than this (packed) is left out of its record
_MOST_RESULT = 16 * 1024
#: ask again for items at most this often while short of them
_ASK_EVERY = 0.05


def _result(value: Any) -> Any:
    data = plain(value)
    try:
        size = len(msgpack.packb(data, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):  # e.g. an int past 64 bits
        return repr(value)[:200]
    return data if size <= _MOST_RESULT else f"(a result of {size} bytes, left out)"


class ItemPort:
    """See the module docstring."""

    def __init__(self, run: str, scenario: int, credit: int, config: Config) -> None:
        self.run = run
        #: the scenario's position in the run
        self.scenario = scenario
        #: the credit the plan gave (the least this agent asks for), and the one it asks for now
        self.base = self.credit = credit
        self._finished = 0
        self._paced_at = -math.inf
        self._paced_count = 0
        self.supply = BufferSupply()
        self.desk = Desk(
            self.supply, max_retries=config.max_retries, retry_delay=config.retry_delay, on_final=self._final
        )
        self._out: deque[tuple[dict[str, Any], int]] = deque()
        self._asked = -math.inf

    def _final(self, item: Work, latency: float) -> None:
        try:
            record, size = self._record(item, latency)
        except Exception as exc:  # never lose an item's record to what its target returned
            status = item.status.value if item.status else "failure"
            record = {"seq": item.seq, "status": status, "attempts": max(item.attempts, 1)}
            record["result" if status == "success" else "error"] = f"(not reportable: {type(exc).__name__})"
            size = 64
        self._out.append((record, size))
        self._finished += 1

    def _record(self, item: Work, latency: float) -> tuple[dict[str, Any], int]:
        record: dict[str, Any] = {"seq": item.seq, "status": item.status.value if item.status else "failure"}
        record["attempts"] = item.attempts
        if item.status is Status.SUCCESS:
            if item.result is not None:
                record["result"] = _result(item.result)
        else:
            record["error"] = (item.error or "unknown")[:4096]
        if item.retries:
            record["retries"] = [r[:4096] for r in item.retries]
        record["latency_ms"] = round(max(latency, 0.0) * 1e3, 3)
        return record, len(msgpack.packb(record, use_bin_type=True))

    def give(self, items: list[list[Any]]) -> None:
        self.supply.put([Work(ident, body, seq=seq) for seq, ident, body in items])

    def mail(self, now: float, *, all_records: bool = False) -> tuple[int, list[dict[str, Any]]] | None:
        """(credit, records) to send now, or None: records whenever there are some, a credit
        while the items held run below half of it (every ``_ASK_EVERY`` at most)."""
        self._pace(now)
        records: list[dict[str, Any]] = []
        budget = _BATCH_BYTES
        while self._out and len(records) < _BATCH and (budget > 0 or not records):
            record, size = self._out.popleft()
            records.append(record)
            budget -= size
        short = len(self.supply) < self.credit / 2 and now - self._asked >= _ASK_EVERY
        if not records and not short:
            return None
        if short:
            self._asked = now
        return self.credit, records

    def _pace(self, now: float) -> None:
        """Grow (or shrink back) the credit to the pace items are finished here, twice a second."""
        if now - self._paced_at < 0.5:
            return
        if self._paced_at > -math.inf:
            rate = (self._finished - self._paced_count) / (now - self._paced_at)
            self.credit = int(min(max(self.base, rate * _AHEAD_S), _MOST_CREDIT))
        self._paced_at, self._paced_count = now, self._finished

    @property
    def pending(self) -> bool:
        """Records still to hand in."""
        return bool(self._out)
