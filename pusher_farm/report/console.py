"""The summary table printed at the end of a run, and the live line printed per window."""

from __future__ import annotations

from typing import Any

from pusher_farm.core.results import Report
from pusher_farm.core.window import Window
from pusher_farm.report.contract import to_dict


def _model(s: dict[str, Any]) -> str:
    """A scenario's model in words: ``closed model (5 users)``, ``drain, 4 parallel``."""
    return s["load"] if s["load"].startswith(s["model"]) else f"{s['model']} model ({s['load']})"


def _ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def render_summary(report: Report) -> str:
    d = to_dict(report)
    c = d["counts"]
    closed = bool(d["scenarios"]) and all(s["latency_is_service_time"] for s in d["scenarios"])
    if closed:  # no rate was asked for: the users' (or lanes') throughput is the output
        rate = (
            f"load        {_model(d['scenarios'][0]) if len(d['scenarios']) == 1 else d['profile']}, throughput "
            f"{d['throughput_rps']:g}/s over {d['duration_s']:.2f}s"
        )
    else:
        rate = (
            f"rate        requested {d['requested_rps']:g}/s ({d['profile']}), "
            f"achieved {d['achieved_rps']:g}/s over {d['duration_s']:.2f}s"
        )
    lines = [
        f"target      {d['target']}",
        rate + (" (stopped early)" if d["stopped_early"] else ""),
        f"slots       scheduled {c['scheduled']}  succeeded {c['succeeded']}  "
        f"failed {c['failed']}  canceled {c['canceled']}"
        + (f"  unfired {c['unfired']} of {c['planned']} planned" if c["unfired"] else ""),
    ]
    if d["errors"]:
        lines.append("errors      " + "  ".join(f"{k}: {v}" for k, v in d["errors"].items()))
    header = f"{'':12}{'p50':>10}{'p90':>10}{'p99':>10}{'p99.9':>10}{'max':>10}{'mean':>10}"
    lines += ["", header + "   (ms)"]
    for label, key in (
        ("latency", "latency_ms"),
        ("service", "service_time_ms"),
        ("sched. lag", "schedule_lag_ms"),
    ):
        s = d[key]
        lines.append(f"{label:12}" + "".join(f"{_ms(s[k]):>10}" for k in ("p50", "p90", "p99", "p99.9", "max", "mean")))
    if d["phases_ms"]:
        lines += ["", f"{'phase':12}{'calls':>10}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}{'mean':>10}   (ms)"]
        for name, s in d["phases_ms"].items():
            lines.append(
                f"{name:12}{s['calls']:>10}" + "".join(f"{_ms(s[k]):>10}" for k in ("p50", "p90", "p99", "max", "mean"))
            )
    lines += _rows(d)
    if d["target_counters"]:
        lines.append("target      " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in d["target_counters"].items()))
    if d.get("items"):
        lines.append(_items_line(d["items"]))
    verdict = d.get("generator_verdict") or {}
    if verdict.get("limited"):
        lines.append("generator   LIMITED: " + "; ".join(verdict.get("reasons") or ["see the agents"]))
    for t in d.get("thresholds", []):
        value = "not measured" if t["value"] is None else f"{t['value']:g}{(' ' + t['unit']) if t['unit'] else ''}"
        lines.append(f"threshold   {t['threshold']:32} {value:>16}   {'ok' if t['ok'] else 'FAILED'}")
    if d["agents"]:
        lines += [
            "",
            f"{'agent':20}{'host':>16}{'version':>9}{'share':>7}{'scheduled':>11}{'ok':>10}{'failed':>8}"
            f"{'canceled':>10}{'unfired':>9}{'offset ms':>11}",
        ]
        for a in d["agents"]:
            ac = a["counts"]
            lines.append(
                f"{a['name'][:20]:20}{str(a.get('host', ''))[:16]:>16}{a['package'][:8]:>9}{a.get('share', 0):>7.3f}"
                f"{ac['scheduled']:>11}{ac['succeeded']:>10}{ac['failed']:>8}{ac['canceled']:>10}{ac['unfired']:>9}"
                f"{a.get('clock_offset_ms', 0.0):>11.3f}"
                + (f"  {a['state'].upper()}" if a["state"] not in ("done", "left") else "")
            )
    for w in d["warnings"]:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


#: names shown in the console (the JSON and HTML reports hold every one)
_CONSOLE_NAMES = 30


def _rows(d: dict[str, Any]) -> list[str]:
    """The tables by scenario and by name, when they say more than the totals: several
    scenarios, a closed model, or several names apart from the scenarios' (one name is the
    totals' own row: it is in the JSON and HTML reports)."""
    scenarios, names = d["scenarios"], d["names"]
    plain = len(scenarios) <= 1 and not any(s["latency_is_service_time"] for s in scenarios)
    if plain and {n["name"] for n in names} <= {s["name"] for s in scenarios}:
        return []
    lines: list[str] = []
    if scenarios and not plain:
        lines += ["", f"{'scenario':16}{'model':>8}{'rps':>9}{'scheduled':>11}{'ok':>9}{'failed':>8}{'canceled':>9}"
                  f"{'p50':>9}{'p99':>9}{'max':>9}   (ms)"]  # fmt: skip
        for s in scenarios:
            c, lat = s["counts"], s["latency_ms"]
            rate = s["throughput_rps"] if s["latency_is_service_time"] else s["requested_rps"]
            lines.append(
                f"{s['name'][:16]:16}{s['model']:>8}{rate:>9.1f}{c['scheduled']:>11}{c['succeeded']:>9}{c['failed']:>8}"
                f"{c['canceled']:>9}" + "".join(f"{_ms(lat[k]):>9}" for k in ("p50", "p99", "max"))
            )
        for s in scenarios:
            if s["latency_is_service_time"]:
                lines.append(
                    f"  {s['name']}: {_model(s)}: latency is service time, the output is throughput "
                    f"{s['throughput_rps']:.1f}/s"
                )
    if len(names) > 1 and {n["name"] for n in names} != {s["name"] for s in scenarios}:
        lines += ["", f"{'name':40}{'calls':>10}{'failed':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}   (ms)"]
        for n in names[:_CONSOLE_NAMES]:
            lat = n["latency_ms"]
            lines.append(
                f"{n['name'][:40]:40}{n['calls']:>10}{n['failed']:>8}"
                + "".join(f"{_ms(lat[k]):>9}" for k in ("p50", "p90", "p99", "max"))
            )
        if len(names) > _CONSOLE_NAMES:
            lines.append(f"... {len(names) - _CONSOLE_NAMES} more names in the JSON and HTML reports")
    return lines


def progress_line(window: Window) -> str:
    lat = window.latency.percentiles((50.0, 99.0))
    return (
        f"[{window.start + window.length:7.1f}s] started {window.started:>7}  ok {window.succeeded:>7}  "
        f"failed {window.failed:>5}  canceled {window.canceled:>5}  "
        f"p50 {lat[50.0] / 1000:8.3f} ms  p99 {lat[99.0] / 1000:8.3f} ms"
    )


def _items_line(items: dict[str, Any]) -> str:
    by = items.get("by_status", {})
    parts = [f"items       taken {items.get('taken', 0)}"]
    parts += [f"{status} {n}" for status, n in sorted(by.items())]
    parts.append(f"retries {items.get('retries', 0)}")
    attempts = items.get("attempts") or {}
    if attempts:
        parts.append("attempts " + " ".join(f"{k}:{v}" for k, v in attempts.items()))
    for key, label in (("waiting_retries", "still to retry"), ("starved_slots", "slots without an item"),
                       ("malformed", "malformed lines")):  # fmt: skip
        if items.get(key):
            parts.append(f"{label} {items[key]}")
    return "  ".join(parts)
