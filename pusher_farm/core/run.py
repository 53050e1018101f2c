"""The run model: every run is ``Run(settings, scenarios)``.

A run is a list of named scenarios, each a ``Config`` with its target, caps, feed and load model
(``core.load``); the command line's one-workload form is a list of one, and ``work``, ``farm``
and ``force`` build the same. ``settings`` holds what belongs to the whole run (the report
window, thresholds, what losing or gaining an agent does): every scenario gets those values, so
no scenario can disagree with its run. A run that exists is valid: names unique, every
scenario with a load, a drain with its feed, thresholds that fit the models.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pusher_farm.core.config import Config
from pusher_farm.core.thresholds import parse_threshold
from pusher_farm.errors import InvalidOption

__all__ = ["MAX_SCENARIOS", "Run"]

#: the most scenarios one run may have
MAX_SCENARIOS = 64


@dataclass(frozen=True)
class Run:
    """A run: its own ``settings`` (the run-wide fields of a ``Config``: window, thresholds,
    policies) and its ``scenarios``, each given those settings."""

    settings: Config
    scenarios: tuple[Config, ...]

    def __post_init__(self) -> None:
        scenarios = tuple(self.scenarios)
        if not scenarios:
            raise InvalidOption("a run needs at least one scenario")
        if len(scenarios) > MAX_SCENARIOS:
            raise InvalidOption(f"a run holds at most {MAX_SCENARIOS} scenarios")
        names = [c.name for c in scenarios]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidOption(f"scenario {twice[0]!r}: two scenarios have this name: give each its own")
        shared = {name: getattr(self.settings, name) for name in Config.run_fields()}
        scenarios = tuple(c if all(getattr(c, k) == v for k, v in shared.items()) else c.replace(**shared)
                          for c in scenarios)  # fmt: skip
        object.__setattr__(self, "scenarios", scenarios)
        for c in scenarios:
            if c.load is None:
                raise InvalidOption(f"scenario {c.name!r}: no load: give it rps, stages, users or drain lanes")
            if c.load.needs_items and c.feed is None:
                raise InvalidOption(f"scenario {c.name!r}: {c.load.describe_kind()} needs a feed of work items")
            if c.feed_cycle and math.isinf(c.length()):
                raise InvalidOption(f"scenario {c.name!r}: a cycling feed never runs dry: give a duration")
        unasked = [c for c in scenarios if c.load is not None and not c.load.asks_rate]
        for text in self.settings.thresholds:
            if unasked and parse_threshold(text).times_requested:
                raise InvalidOption(
                    f"threshold {text!r}: scenario {unasked[0].name!r} is {unasked[0].load.describe_kind()}, which "
                    "asks for no rate; judge the run by throughput_rps, latency or error_rate instead"
                )

    @classmethod
    def of(cls, scenarios: Sequence[Config], settings: Config | None = None) -> Run:
        """A run of ``scenarios`` with the run settings of ``settings`` (default: the first's)."""
        scenarios = tuple(scenarios)
        if not scenarios:
            raise InvalidOption("a run needs at least one scenario")
        return cls(settings if settings is not None else scenarios[0], scenarios)

    def __iter__(self) -> Iterator[Config]:
        return iter(self.scenarios)

    def __len__(self) -> int:
        return len(self.scenarios)

    def index(self, name: str) -> int:
        """The position of scenario ``name``; ``InvalidOption`` when the run has none."""
        for i, c in enumerate(self.scenarios):
            if c.name == name:
                return i
        raise InvalidOption(f"the run has no scenario {name!r} (it has {', '.join(c.name for c in self.scenarios)})")

    def length(self) -> float:
        """Seconds from the start to the end of its last scenario (``inf``: open-ended)."""
        return max(c.length() for c in self.scenarios)

    def longest_call(self) -> float:
        """The longest a call may take (the largest timeout; 0 when none is bounded)."""
        return max((c.timeout or 0.0) for c in self.scenarios)

    def requested_rps(self, seconds: float) -> float:
        """Calls per second the run asked for over its first ``seconds``."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return 0.0
        return sum(c.load.requested_until(seconds) for c in self.scenarios if c.load is not None) / seconds

    def rate_at(self, t: float) -> float:
        """The rate the run asks for at ``t`` seconds from its start."""
        return sum(c.load.rate_at(t) for c in self.scenarios if c.load is not None)

    def replaced(self, index: int, config: Config) -> Run:
        """The run with scenario ``index`` replaced (a runtime change)."""
        scenarios = list(self.scenarios)
        scenarios[index] = config
        return Run(self.settings, tuple(scenarios))

    def with_feeds(self) -> list[int]:
        """The scenarios with a feed of their own, by position."""
        return [i for i, c in enumerate(self.scenarios) if c.feed is not None]
