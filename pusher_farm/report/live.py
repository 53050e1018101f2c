"""The live terminal view of a farm run (rich): what a person watches while it runs.

Redrawn at each merged window: a progress bar with time left, requested vs achieved rate,
succeeded / failed / canceled per second, p50 / p99 latency and schedule lag of the last
window, the errors so far by kind, and the agents (state, share, clock offset, CPU, round
trip). Used when standard error is a terminal; otherwise the command prints one plain line per
window (``console.progress_line``), and nothing with ``-q``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = ["LiveView"]

_ERRORS_SHOWN = 5


class LiveView:
    """See the module docstring. ``attach`` the coordinator (for its agents and plan), feed it
    merged windows (``on_window``), ``stop`` it before the summary is printed."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.coord: Any = None
        self.totals = Counter()
        self.errors: Counter[str] = Counter()
        self.last: Any = None
        self.live = Live(Text("waiting for the agents…"), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()
        # Log lines go through the same console, above the view, instead of garbling it.
        import logging

        from rich.logging import RichHandler

        root = logging.getLogger()
        self._handlers = root.handlers[:]
        root.handlers = [RichHandler(console=self.console, show_path=False, markup=False)]

    def attach(self, coord: Any) -> None:
        self.coord = coord

    def on_window(self, window: Any) -> None:
        self.last = window
        self.totals.update(started=window.started, succeeded=window.succeeded, failed=window.failed,
                           canceled=window.canceled)  # fmt: skip
        self.errors.update(window.errors)
        self.live.update(self.render())

    def render(self) -> Group:
        w = self.last
        end = w.start + w.length
        length = math.inf
        requested = 0.0
        if self.coord is not None:
            run = self.coord.run
            length = run.length()
            requested = run.rate_at(w.start + w.length / 2)
        parts: list[Any] = []
        if math.isfinite(length) and length > 0:
            bar = ProgressBar(total=length, completed=min(end, length), width=50)
            left = max(0.0, length - end)
            parts.append(Group(Text(f"{end:.0f} s of {length:.0f} s, {left:.0f} s left"), bar))
        else:
            parts.append(Text(f"{end:.0f} s"))
        lat = w.latency.percentiles([50, 99]) if w.latency.total else {50: 0, 99: 0}
        lag = w.lag.percentile(99) / 1000 if w.lag.total else 0.0
        t = Table(title="last window", show_edge=False)
        for column in ("requested/s", "achieved/s", "ok/s", "failed/s", "canceled/s", "p50 ms", "p99 ms", "lag p99 ms"):
            t.add_column(column, justify="right")
        per = w.length or 1.0
        rates = [requested, w.started / per, w.succeeded / per, w.failed / per, w.canceled / per]
        times = [lat[50] / 1000, lat[99] / 1000, lag]
        t.add_row(*[f"{r:,.1f}" for r in rates], *[f"{x:.3f}" for x in times])
        parts.append(t)
        tot = self.totals
        parts.append(Text(f"so far: ok {tot['succeeded']:,}  failed {tot['failed']:,}  canceled {tot['canceled']:,}"))
        if self.errors:
            shown = ", ".join(f"{kind}: {n:,}" for kind, n in self.errors.most_common(_ERRORS_SHOWN))
            parts.append(Text("errors: " + shown, style="red"))  # Text: kinds are not markup
        if self.coord is not None:
            agents = Table(title="agents", show_edge=False)
            for column in ("agent", "host", "state", "share", "offset ms", "rtt ms", "cpu %"):
                agents.add_column(column, justify="left" if column in ("agent", "host", "state") else "right")
            for a in self.coord.state.agents.values():
                rtt = "—" if a.rtt != a.rtt else f"{a.rtt * 1000:.2f}"
                cpu = a.cpu
                cells = [
                    a.state.value,
                    f"{a.share:.3f}",
                    f"{a.offset * 1000:.3f}",
                    rtt,
                    "—" if cpu is None else f"{cpu:.0f}",
                ]
                agents.add_row(Text(a.name), Text(a.host), *cells)
            parts.append(agents)
        return Group(*parts)

    def stop(self) -> None:
        import logging

        self.live.stop()
        logging.getLogger().handlers = self._handlers
