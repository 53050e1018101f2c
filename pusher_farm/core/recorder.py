"""Stamping outcomes and folding them into report windows.

Every call is stamped in one place with its slot's intended time, its actual start and its
end (three float appends: the hot path stays cheap); every so often the stamps are folded, as
numpy arrays, into the histograms of the window they ended in: latency = end - intended (from
the actual start for a slot launched early with its batch, so never below the service time),
service = end - start, lag = start - intended. Launches and canceled slots are counted in the
window they happened in. Windows close on the run's clock every ``window`` seconds; a stamp
that lands in a window already emitted (a thread's late result) is emitted as a late window of
the same index, and merging is by index.

Error kinds are bounded: past ``MAX_ERROR_KINDS`` distinct kinds in a run, further ones are
counted as ``OTHER_KINDS`` (a target that names its errors after, say, every URL must not grow
memory or windows without bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from pusher_farm.core.buckets import LAYOUT
from pusher_farm.core.stats import Histogram
from pusher_farm.core.window import MAX_COUNTERS, MAX_ERROR_KINDS, MAX_NAME, MAX_PHASES, OTHER_NAMES, NameRow, Window

__all__ = ["OTHER_KINDS", "Recorder"]

#: named calls a window keeps before splitting them by name (at its end, or at this many)
_SETTLE_AT = 16_384
#: the kind under which errors past the run's first MAX_ERROR_KINDS kinds are counted
OTHER_KINDS = "other kinds"


class Recorder:
    """The stamp buffers of one run and the windows they fold into (``emit`` gets each)."""

    def __init__(
        self, window: float, emit: Callable[[Window], None], *, name: str = "default", max_names: int = 1000
    ) -> None:
        self.window = window
        self.emit = emit
        #: the scenario: its windows carry its name, and calls no target named go under it
        self.name = name
        self.max_names = max_names
        #: the distinct call names seen so far (bounded by ``max_names``), and those refused
        self._names: set[str] = {name}
        self.names_over = 0
        #: each name kept so far, numbered (named calls wait for their window's end as numbers)
        self._name_ids: dict[str, int] = {}
        self.t0 = math.nan
        self._next_window = 0
        self._open: dict[int, Window] = {}
        self._kinds: set[str] = set()
        # Buffers of stamps not yet folded into a window. They stay the same list objects for
        # the whole run (``flush`` empties them), so a caller may keep their bound ``append``s.
        self.launches: list[float] = []
        self.canceled: list[float] = []
        # (intended, start, end, call name or None) and, for failures, the error kind too
        self.ok: tuple[list[float], list[float], list[float], list[str | None]] = ([], [], [], [])
        self.ko: tuple[list[float], list[float], list[float], list[str], list[str | None]] = ([], [], [], [], [])
        #: (sent, first byte, end) of calls whose target marked them (ttfb and receive)
        self.marks: tuple[list[float], list[float], list[float]] = ([], [], [])
        #: (end, ((phase, seconds), ...)) of calls whose target measured other phases
        self.phases: list[tuple[float, tuple[tuple[str, float], ...]]] = []
        #: what the target counted (cumulative), read at each flush: its increase goes into
        #: the window of the flush
        self.counters: Callable[[], dict[str, int]] | None = None
        self._counted: dict[str, int] = {}

    def succeeded(self, intended: float, start: float, end: float) -> None:
        ok = self.ok
        ok[0].append(intended)
        ok[1].append(start)
        ok[2].append(end)
        ok[3].append(None)

    def failed(self, intended: float, start: float, end: float, kind: str) -> None:
        ko = self.ko
        ko[0].append(intended)
        ko[1].append(start)
        ko[2].append(end)
        ko[3].append(kind)
        ko[4].append(None)

    def flush(self, now: float, *, final: bool) -> int:
        """Fold buffered stamps into their windows; emit every window whose end has passed
        (every window at all when ``final``). Returns how many stamps it folded."""
        launches, canceled = _take(self.launches), _take(self.canceled)
        ok = tuple(_take(b) for b in self.ok)
        ko = tuple(_take(b) for b in self.ko)
        marks = tuple(_take(b) for b in self.marks)
        phases = _take(self.phases)
        late: dict[int, Window] = {}
        self._count(launches, "started", late)
        self._count(canceled, "canceled", late)
        self._fold(ok[:3], None, ok[3], late)
        self._fold(ko[:3], self._bounded(ko[3]), ko[4], late)
        if marks[0]:
            self._fold_marks(marks, late)
        if phases:
            self._fold_phases(phases, late)
        if self.counters is not None:
            self._take_counters(now, late)
        if final:
            last = max(self._open, default=self._next_window - 1)
        else:
            last = math.floor((now - self.t0) / self.window) - 1
        for i in range(self._next_window, last + 1):
            self.emit(
                self._settle(self._open.pop(i, None) or Window(i, i * self.window, self.window, scenario=self.name))
            )
        self._next_window = max(self._next_window, last + 1)
        for i in sorted(late):  # stamped in a window already emitted (a thread's late result)
            self.emit(self._settle(late[i]))
        return len(launches) + len(canceled) + len(ok[0]) + len(ko[0])

    def _fold_marks(self, marks: tuple[list[float], ...], late: dict[int, Window]) -> None:
        sent = np.asarray(marks[0], dtype=np.float64)
        first = np.asarray(marks[1], dtype=np.float64)
        end = np.asarray(marks[2], dtype=np.float64)
        ttfb = np.rint((first - sent) * 1e6).astype(np.int64)
        receive = np.rint((end - first) * 1e6).astype(np.int64)
        for i, mask in _groups(self._index(marks[2])):
            w = self._window(i, late)
            for name, values in (("ttfb", ttfb), ("receive", receive)):
                histogram = w.phases.get(name)
                if histogram is None:
                    histogram = w.phases[name] = Histogram()
                histogram.record_many(values[mask])

    def _fold_phases(self, phases: list[tuple[float, tuple[tuple[str, float], ...]]], late: dict[int, Window]) -> None:
        by_window: dict[int, dict[str, list[float]]] = {}
        t0, length = self.t0, self.window
        for end, timings in phases:
            values = by_window.setdefault(math.floor((end - t0) / length), {})
            for name, seconds in timings:
                values.setdefault(name, []).append(seconds)
        for i, values in by_window.items():
            w = self._window(i, late)
            for name, seconds in values.items():
                histogram = w.phases.get(name)
                if histogram is None:
                    if len(w.phases) >= MAX_PHASES:
                        continue  # a target naming phases without bound: the rest are not kept
                    histogram = w.phases[name] = Histogram()
                histogram.record_many(np.rint(np.asarray(seconds) * 1e6).astype(np.int64))

    def _take_counters(self, now: float, late: dict[int, Window]) -> None:
        assert self.counters is not None
        try:
            counted = self.counters()
        except Exception:  # a target's broken counters must not break the run
            return
        # Into the newest window: the one open now, else the last one emitted (as a late window
        # of its index), so counting adds no window of its own after the run's last.
        w = self._window(max(self._open) if self._open else max(self._next_window - 1, 0), late)
        for name, total in list(counted.items())[:MAX_COUNTERS]:
            if isinstance(total, int) and not isinstance(total, bool):
                increase = total - self._counted.get(name, 0)
                if increase:
                    w.counters[str(name)[:64]] += increase
                    self._counted[name] = total

    def _bounded(self, kinds: list[str]) -> list[str]:
        """``kinds``, with those past the run's first MAX_ERROR_KINDS - 1 as OTHER_KINDS."""
        seen = self._kinds
        room = MAX_ERROR_KINDS - 1 - len(seen)
        new = set(kinds) - seen
        if len(new) <= room:
            seen |= new
            return kinds
        for kind in kinds:
            if room > 0 and kind in new and kind not in seen:
                seen.add(kind)
                room -= 1
        return [kind if kind in seen else OTHER_KINDS for kind in kinds]

    def _window(self, i: int, late: dict[int, Window]) -> Window:
        pool = late if i < self._next_window else self._open
        w = pool.get(i)
        if w is None:
            w = pool[i] = Window(i, i * self.window, self.window, scenario=self.name)
        return w

    def _index(self, times: list[float]) -> np.ndarray:
        return np.floor((np.asarray(times, dtype=np.float64) - self.t0) / self.window).astype(np.int64)

    def _count(self, times: list[float], field: str, late: dict[int, Window]) -> None:
        if not times:
            return
        for i, n in _per_window(self._index(times)):
            w = self._window(i, late)
            setattr(w, field, getattr(w, field) + n)

    def _call_names(self, names: list[str | None]) -> str | list[str] | None:
        """The calls' names, None for a batch no target named (all under the scenario's), one
        name for a batch of one (the http target's); past ``max_names`` distinct names, the new
        ones count as ``OTHER_NAMES``."""
        try:
            distinct = set(names)
        except TypeError:  # a target gave an unhashable name: as text
            names = [n if n is None or isinstance(n, str) else str(n) for n in names]
            distinct = set(names)
        if distinct == {None}:
            return None
        if not all(n is None or isinstance(n, str) for n in distinct):  # names are text
            names = [n if n is None or isinstance(n, str) else str(n) for n in names]
            distinct = set(names)
        seen = self._names
        default = self.name
        if len(distinct) == 1:
            (only,) = distinct
            if only in seen:
                return only  # type: ignore[return-value]
        out = [default if n is None else n for n in names]
        new = {n for n in distinct if n is not None} - seen  # type: ignore[misc]
        if new:
            refused: set[str] = set()
            for n in sorted(new) if len(seen) < self.max_names else new:
                if len(n) <= MAX_NAME and len(seen) < self.max_names:
                    seen.add(n)
                else:
                    refused.add(n)
            if refused:
                self.names_over += len(refused)
                seen.add(OTHER_NAMES)
                out = [n if n in seen else OTHER_NAMES for n in out]
        return out

    def _fold_names(
        self,
        w: Window,
        names: str | list[str],
        picked: Any,
        lat: np.ndarray,
        svc: np.ndarray,
        kinds: list[str] | None,
    ) -> None:
        """Keep one window's batch of calls with their names (``names`` already bounded) until
        the window closes or ``_SETTLE_AT`` wait: split by name then, in one go (a thousand
        names split every 25 ms would cost more than the calls)."""
        if not w.names and not w.unsettled and (w.succeeded or w.failed):
            w.names[self.name] = NameRow.of(w)  # calls folded before in this window had no name
        sel = np.flatnonzero(picked) if not isinstance(picked, slice) else None
        number = self._name_ids
        if isinstance(names, str):
            count = len(lat) if sel is None else len(sel)
            ids = np.full(count, number.setdefault(names, len(number)), dtype=np.int32)
        else:
            chosen = names if sel is None else [names[j] for j in sel.tolist()]
            for name in set(chosen) - number.keys():  # bounded: names past max_names are "other"
                number[name] = len(number)
            ids = np.fromiter(map(number.__getitem__, chosen), dtype=np.int32, count=len(chosen))
        picked_kinds = None if kinds is None else kinds if sel is None else [kinds[j] for j in sel.tolist()]
        w.unsettled.append((ids, lat[picked], svc[picked], picked_kinds))
        if sum(len(e[0]) for e in w.unsettled) >= _SETTLE_AT:
            self._settle(w)  # in steps: one long pause at the window's end would delay slots

    def _settle(self, w: Window) -> Window:
        """Split the named calls ``w`` kept by name into its rows (see ``_fold_names``): a few
        numpy calls over them all (``grouped``), however many names."""
        if not w.unsettled:
            return w
        entries, w.unsettled = w.unsettled, []
        ids = np.concatenate([e[0] for e in entries])
        lat = np.concatenate([e[1] for e in entries])
        svc = np.concatenate([e[2] for e in entries])
        failed = np.concatenate([np.full(len(e[0]), e[3] is not None) for e in entries])
        groups = len(self._name_ids)
        latency, service = grouped(ids, lat, groups), grouped(ids, svc, groups)
        ko = np.bincount(ids[failed], minlength=groups).tolist()
        errors: dict[int, list[str]] = {}
        for e in entries:
            if e[3] is not None:
                for i, kind in zip(e[0].tolist(), e[3], strict=True):
                    errors.setdefault(i, []).append(kind)
        for name, i in self._name_ids.items():
            if not latency[i].total:
                continue
            row = w.names.get(name)
            if row is None:
                row = w.names[name] = NameRow()
            row.latency.add(latency[i])
            row.service.add(service[i])
            row.failed += ko[i]
            row.succeeded += latency[i].total - ko[i]
            if i in errors:
                row.errors.update(errors[i])
        return w

    def _fold(
        self,
        stamps: tuple[list[float], ...],
        kinds: list[str] | None,
        call_names: list[str | None],
        late: dict[int, Window],
    ) -> None:
        if not stamps[0]:
            return
        names = self._call_names(call_names)
        intended = np.asarray(stamps[0], dtype=np.float64)
        start = np.asarray(stamps[1], dtype=np.float64)
        end = np.asarray(stamps[2], dtype=np.float64)
        index = self._index(stamps[2])
        # Latency from the intended start, or from the actual one for a slot launched early
        # with its batch: never below the service time.
        lat = np.rint((end - np.minimum(intended, start)) * 1e6).astype(np.int64)
        svc = np.rint((end - start) * 1e6).astype(np.int64)
        lag = np.rint((start - intended) * 1e6).astype(np.int64)
        one = index[0] == index[-1]
        for i, mask in _groups(index):
            w = self._window(i, late)
            if names is not None:
                self._fold_names(w, names, mask, lat, svc, kinds)
            elif w.names or w.unsettled:  # a window split by name before: these go under the scenario's
                self._fold_names(w, self.name, mask, lat, svc, kinds)
            w.latency.record_many(lat[mask])
            w.service.record_many(svc[mask])
            w.lag.record_many(lag[mask])
            if kinds is None:
                w.succeeded += len(lat[mask])
            else:
                picked = kinds if one else [kinds[j] for j in np.flatnonzero(mask).tolist()]
                w.failed += len(picked)
                w.errors.update(picked)


def _groups(index: np.ndarray) -> list[tuple[int, Any]]:
    """(window, what selects its stamps) for each window in ``index``: the whole batch when it
    ended in one window (the usual case), else a mask per window."""
    if index[0] == index[-1]:
        return [(int(index[0]), slice(None))]
    return [(i, index == i) for i, _ in _per_window(index)]


def _take(buffer: list[Any]) -> list[Any]:
    """What ``buffer`` holds, leaving it empty (the same list object)."""
    out = buffer[:]
    buffer.clear()
    return out


def _per_window(index: np.ndarray) -> list[tuple[int, int]]:
    """(window, count) for each window present in ``index`` (a bincount, not np.unique:
    np.unique imports numpy.ma on first use, a 17 ms stall in the middle of a run)."""
    low = int(index.min())
    counts = np.bincount(index - low)
    nz = np.flatnonzero(counts)
    return list(zip((nz + low).tolist(), counts[nz].tolist(), strict=True))


def grouped(ids: np.ndarray, values_us: np.ndarray, groups: int) -> list[Histogram]:
    """One histogram per group ``0 .. groups - 1`` of the microsecond ``values_us``, value
    ``i`` going to group ``ids[i]``: the same counts as recording each group on its own, for a
    few numpy calls over all values and a few per non-empty group (a thousand call names in
    one window cost milliseconds, not a stall of the event loop)."""
    out = [Histogram() for _ in range(groups)]
    if not len(values_us):
        return out
    values = np.maximum(np.asarray(values_us, dtype=np.int64), 0)
    over = values > LAYOUT.highest
    clamped = np.bincount(ids[over], minlength=groups) if over.any() else None
    values = np.minimum(values, LAYOUT.highest)
    index = LAYOUT.index_of(values)
    key = ids.astype(np.int64) * LAYOUT.counts_len + index
    order = np.argsort(key, kind="stable")
    key, sid, sval = key[order], ids[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], sid[1:] != sid[:-1])))
    ends = np.append(starts[1:], len(sid))
    sums = np.add.reduceat(sval, starts).tolist()
    lows = np.minimum.reduceat(sval, starts).tolist()
    highs = np.maximum.reduceat(sval, starts).tolist()
    # every (group, bucket) once, with its count; then each group's slice of them
    firsts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    counts = np.diff(np.append(firsts, key.size))
    buckets = key[firsts] % LAYOUT.counts_len
    cuts = [*np.searchsorted(firsts, starts).tolist(), firsts.size]
    for n, (g, s, e) in enumerate(zip(sid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)):
        out[g] = Histogram.from_pairs(
            buckets[cuts[n] : cuts[n + 1]],
            counts[cuts[n] : cuts[n + 1]],
            total=e - s,
            sum_=int(sums[n]),
            low=int(lows[n]),
            high=int(highs[n]),
            clamped=0 if clamped is None else int(clamped[g]),
        )
    return out
