"""Merging agents' report windows into one report, exactly.

Windows of the same index cover the same slice of absolute time on every agent (all agents
start on the coordinator's clock with the same window length), so merging is adding: counters
sum, histograms add bucket by bucket. Percentiles are read from the merged histograms, never
averaged. A merged window is handed to listeners once every agent of the run has reported past
it (or at the end), so a metrics sink sees the whole farm once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from pusher_farm.core.tally import Tally, aggregate
from pusher_farm.core.window import Window

__all__ = ["Aggregator", "AgentCounts"]


class AgentCounts(NamedTuple):
    """What one agent's merged windows counted."""

    scheduled: int
    succeeded: int
    failed: int
    canceled: int


class Aggregator:
    def __init__(
        self, window: float, listeners: Iterable[Callable[[Window], None]] = (), max_names: int = 1000
    ) -> None:
        self.tally = Tally(window, max_names)
        self.per_agent: dict[str, Window] = {}
        #: slots each agent scheduled in each scenario (its windows' started + canceled)
        self.scheduled: dict[tuple[str, str], int] = {}
        self.listeners = list(listeners)
        self.listener_errors: list[str] = []
        self._pending: dict[int, Window] = {}
        self._progress: dict[str, int] = {}  # highest window index seen per agent

    def add(self, agent: str, window: Window) -> None:
        """Fold one (already deduplicated) window from ``agent``."""
        self.tally.add(window)
        totals = self.per_agent.get(agent)
        if totals is None:
            totals = self.per_agent[agent] = Window(-1, 0.0, 0.0)
        totals.started += window.started
        totals.succeeded += window.succeeded
        totals.failed += window.failed
        totals.canceled += window.canceled
        totals.errors.update(window.errors)
        key = (agent, window.scenario)
        self.scheduled[key] = self.scheduled.get(key, 0) + window.started + window.canceled
        self._progress[agent] = max(self._progress.get(agent, -1), window.index)
        if self.listeners:
            pending = self._pending.get(window.index)
            if pending is None:
                pending = self._pending[window.index] = aggregate(Window(window.index, window.start, window.length))
            pending.merge(window)

    def release(self, agents: Iterable[str], *, final: bool = False) -> None:
        """Hand listeners every merged window that all ``agents`` have reported past."""
        agents = list(agents)
        if final:
            ready = max(self._pending, default=-1)
        else:
            ready = min((self._progress.get(a, -1) for a in agents), default=-1) - 1
        # Windows everyone has passed keep only sparse counts: memory stays flat on long runs.
        self.tally.close_before(ready)
        if not self.listeners:
            return
        for index in sorted(i for i in self._pending if i <= ready):
            window = self._pending.pop(index)
            for listener in self.listeners:
                try:
                    listener(window)
                except Exception as exc:  # a broken sink must not break the run
                    self.listener_errors.append(f"{getattr(listener, '__name__', listener)!r}: {exc!r}")

    def counts(self, agent: str) -> AgentCounts:
        w = self.per_agent.get(agent) or Window(-1, 0.0, 0.0)
        return AgentCounts(w.started + w.canceled, w.succeeded, w.failed, w.canceled)
