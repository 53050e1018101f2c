"""Thresholds: pass/fail criteria on a run's merged numbers, k6's idea on the whole farm.

A threshold reads ``METRIC OP VALUE``:

* ``METRIC``: a percentile of latency (``p50``, ``p90``, ``p95``, ``p99``, ``p99.9``, any
  ``pNN.N``, ``max``, ``mean``), of service time or schedule lag (``service.p99``,
  ``lag.p99``) or of a phase (``connect.p99``, ``ttfb.p50``...); ``error_rate`` (failed over
  completed calls), ``cancel_rate`` (canceled over scheduled slots); ``achieved_rps``,
  ``throughput_rps``; the counts ``succeeded``, ``failed``, ``canceled``, ``scheduled``,
  ``unfired``.
* ``OP``: ``<``, ``<=``, ``>``, ``>=``, ``==``.
* ``VALUE``: a number, with ``us``, ``ms`` or ``s`` for times (compared in ms; a bare number is
  ms) and ``%`` for rates (a bare number is a fraction); or ``K*requested`` (the requested rate).

Every threshold is evaluated on the whole run's merged histograms and counts, never on an
average of per-agent numbers. A threshold that cannot be evaluated (a phase that never
happened) fails: a criterion that was not met is never reported as passed.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pusher_farm.errors import InvalidOption

__all__ = ["EXIT_THRESHOLDS", "Threshold", "Verdict", "Watch", "check_all", "evaluate", "judge", "parse_threshold"]

#: the exit status of a run whose thresholds failed (as k6's)
EXIT_THRESHOLDS = 99

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt,
}  # fmt: skip
_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|<|>)\s*(.+?)\s*$")
#: [HISTOGRAM.]STAT: latency by default, or service, lag or a phase
_TIME = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)\.)?(p\d{1,2}(?:\.\d+)?|p100|max|mean)$")
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_COUNTS = ("succeeded", "failed", "canceled", "scheduled", "unfired")
_RATES = ("error_rate", "cancel_rate")
_SPEEDS = ("achieved_rps", "throughput_rps")
_HISTOGRAMS = ("latency", "service", "lag")
#: a run may end before a window shows anything: these are checked at the end only
END_ONLY = _SPEEDS


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # in ms for times, a fraction for rates
    times_requested: bool = False  # value is a factor of the requested rate

    @property
    def unit(self) -> str:
        if self.metric in _RATES:
            return "%"
        if self.metric in _SPEEDS:
            return "rps"
        if self.metric in _COUNTS:
            return ""
        return "ms"

    def limit(self, requested_rps: float) -> float:
        return self.value * requested_rps if self.times_requested else self.value


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    measured: float | None  # None: could not be measured
    limit: float
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        t = self.threshold
        scale = 100.0 if t.unit == "%" else 1.0
        measured = None if self.measured is None else round(self.measured * scale, 6)
        return {"threshold": t.text, "metric": t.metric, "value": measured, "limit": round(self.limit * scale, 6),
                "unit": t.unit, "ok": self.ok}  # fmt: skip


def _metric_kind(metric: str) -> str:
    if metric in _COUNTS or metric in _RATES or metric in _SPEEDS:
        return metric
    if _TIME.match(metric):
        return "time"
    raise ValueError(
        f"unknown metric {metric!r} (use p99, p99.9, max, mean, service.p99, lag.p99, connect.p99, error_rate, "
        "cancel_rate, achieved_rps, throughput_rps, failed, canceled, ...)"
    )


def parse_threshold(text: str) -> Threshold:
    """A threshold from its text; ``InvalidOption`` saying what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidOption(f"a threshold is text such as 'p99<250ms', got {text!r}")
    m = _FORM.match(text)
    if m is None:
        raise InvalidOption(f"threshold {text!r}: write METRIC OP VALUE, e.g. 'p99<250ms' or 'error_rate<1%'")
    metric, op, raw = m.group(1), m.group(2), m.group(3).replace(" ", "")
    try:
        kind = _metric_kind(metric)
    except ValueError as exc:
        raise InvalidOption(f"threshold {text!r}: {exc}") from None
    factor = re.fullmatch(r"([0-9.eE+-]+)\*requested(?:_rps)?", raw)
    try:
        if factor:
            if not math.isfinite(float(factor.group(1))):
                raise ValueError("the factor must be finite")
            if kind not in _SPEEDS:
                raise ValueError("only achieved_rps and throughput_rps compare with the requested rate")
            return Threshold(text, metric, op, float(factor.group(1)), times_requested=True)
        number = re.fullmatch(r"([0-9.eE+-]+)(us|ms|s|%)?", raw)
        if number is None:
            raise ValueError(f"cannot read the value {raw!r}")
        value, unit = float(number.group(1)), number.group(2)
        if not math.isfinite(value):
            raise ValueError("the value must be finite")
        if unit in _TIME_UNITS:
            if kind != "time":
                raise ValueError(f"{unit} is for times (p99, max, mean, ...), not {metric}")
            value *= _TIME_UNITS[unit]
        elif unit == "%":
            if kind not in _RATES:
                raise ValueError(f"% is for rates (error_rate, cancel_rate), not {metric}")
            value /= 100.0
    except ValueError as exc:
        raise InvalidOption(f"threshold {text!r}: {exc}") from None
    return Threshold(text, metric, op, value)


def _measure(metric: str, report: Any) -> float | None:
    c = report.counts
    if metric in _COUNTS:
        return float(getattr(c, metric))
    if metric == "error_rate":
        done = c.succeeded + c.failed
        return c.failed / done if done else 0.0
    if metric == "cancel_rate":
        return c.canceled / c.scheduled if c.scheduled else 0.0
    if metric in _SPEEDS:
        return float(getattr(report, metric))
    m = _TIME.match(metric)
    assert m is not None  # checked when parsed
    name, stat = m.group(1) or "latency", m.group(2)
    hist = getattr(report, name) if name in _HISTOGRAMS else report.phases.get(name)
    if hist is None or hist.total == 0:
        return None
    if stat == "max":
        return hist.max / 1000
    if stat == "mean":
        return hist.mean / 1000
    q = float(stat[1:])
    return min(hist.percentiles([q])[q], hist.max) / 1000


def evaluate(thresholds: Iterable[Threshold], report: Any, *, skip: tuple[str, ...] = ()) -> list[Verdict]:
    """Each threshold against ``report``'s numbers (metrics in ``skip`` are left out)."""
    out = []
    for t in thresholds:
        if t.metric in skip:
            continue
        measured = _measure(t.metric, report)
        limit = t.limit(report.requested_rps)
        ok = measured is not None and _OPS[t.op](measured, limit)
        out.append(Verdict(t, measured, limit, ok))
    return out


def check_all(value: Any) -> tuple[str, ...]:
    """The ``thresholds`` setting: texts, each parsed now (a bad one fails where written)."""
    texts = (value,) if isinstance(value, str) else tuple(value)
    for text in texts:
        parse_threshold(text)
    return texts


class Watch:
    """Checks thresholds on the merged totals after every window (``--abort-on-fail``): the
    first time one fails, ``on_fail`` gets the failed verdicts. Only running totals are kept
    (one window's worth of memory, whatever the run's length). The first window (the start)
    is not judged, and rates and counts (``achieved_rps``, ``failed<10``, ``scheduled>=N``...)
    only at the end: a count or a rate so far says little about the whole run."""

    def __init__(
        self, texts: Iterable[str], window: float, requested_rps: float, on_fail: Callable[[list[Verdict]], None]
    ) -> None:
        from pusher_farm.core.window import Window

        self.thresholds = [parse_threshold(t) for t in texts]
        self.total = Window(index=-1, start=0.0, length=window)
        self.requested_rps = requested_rps
        self.on_fail = on_fail
        self.failed: list[Verdict] = []

    def add(self, window: Any) -> None:
        from types import SimpleNamespace

        from pusher_farm.core.results import Counts

        if self.failed or not self.thresholds:
            return
        t = self.total
        t.merge(window)
        if window.index < 1:
            return
        scheduled = t.started + t.canceled
        counts = Counts(scheduled=scheduled, succeeded=t.succeeded, failed=t.failed, canceled=t.canceled,
                        planned=scheduled)  # fmt: skip
        now = SimpleNamespace(counts=counts, latency=t.latency, service=t.service, lag=t.lag, phases=t.phases,
                              requested_rps=self.requested_rps)  # fmt: skip
        verdicts = evaluate(self.thresholds, now, skip=END_ONLY + _COUNTS)
        failed = [v for v in verdicts if not v.ok and v.measured is not None]
        if failed:
            self.failed = failed
            self.on_fail(failed)


def judge(report: Any, texts: Iterable[str], *, failed_during: bool = False) -> None:
    """Evaluate ``texts`` on the finished ``report``: its ``thresholds`` list each verdict, and
    its status becomes ``EXIT_THRESHOLDS`` when one failed (or one failed during the run and
    stopped it, ``failed_during``), unless the run was refused outright (status 2)."""
    verdicts = evaluate([parse_threshold(t) for t in texts], report)
    report.thresholds = [v.as_dict() for v in verdicts]
    if (failed_during or any(not v.ok for v in verdicts)) and report.status != 2:
        report.status = EXIT_THRESHOLDS
