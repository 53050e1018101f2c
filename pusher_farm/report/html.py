"""The report as one self-contained HTML file: plots and tables, no network needed.

Plots are drawn by uPlot (MIT), inlined: measured, it is 51 KB minified against Chart.js's
210 KB, and draws thousands of points on a canvas at once. One report: requested vs achieved
rate, latency percentiles over time, errors and cancels over time, and the latency percentile
spectrum (HDR style: percentile on a log scale of 1/(1-p), to p99.99), then the summary,
thresholds, warnings, per-agent table and the manifest. Two reports: the same plots overlaid
and a table of deltas (the question a benchmark rig asks most).
"""

from __future__ import annotations

import base64
import html
import json
import math
from importlib.resources import files
from typing import Any

__all__ = ["render_html"]

_SPECTRUM = [0, 10, 25, 50, 75, 90, 95, 97.5, 99, 99.5, 99.75, 99.9, 99.95, 99.975, 99.99]
_ROWS = [("requested rps", "requested_rps", ""), ("achieved rps", "achieved_rps", ""),
         ("throughput rps", "throughput_rps", ""), ("p50", "latency_ms.p50", "ms"), ("p90", "latency_ms.p90", "ms"),
         ("p99", "latency_ms.p99", "ms"), ("p99.9", "latency_ms.p99.9", "ms"), ("max", "latency_ms.max", "ms"),
         ("service p99", "service_time_ms.p99", "ms"), ("lag p99", "schedule_lag_ms.p99", "ms"),
         ("succeeded", "counts.succeeded", ""), ("failed", "counts.failed", ""), ("canceled", "counts.canceled", ""),
         ("error rate", "error_rate", "%")]  # fmt: skip


def _static(name: str) -> str:
    return (files("pusher_farm.report") / "static" / name).read_text(encoding="utf-8")


def _get(d: dict[str, Any], path: str) -> float | None:
    """A number of a report's JSON by path (``latency_ms.p99.9``, ``counts.failed``)."""
    if path == "error_rate":
        c = d["counts"]
        done = c["succeeded"] + c["failed"]
        return 100.0 * c["failed"] / done if done else 0.0
    head, _, rest = path.partition(".")
    value = d.get(head)
    if rest:
        value = value.get(rest) if isinstance(value, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _window(d: dict[str, Any]) -> float:
    """The report's window length: the plan's, else the spacing of the series."""
    plans = d.get("manifest", {}).get("plan") or []
    window = plans[0].get("window") if plans else None
    if isinstance(window, (int, float)) and window > 0:
        return float(window)
    ts = [r["t"] for r in d["series"]]
    return ts[1] - ts[0] if len(ts) > 1 and ts[1] > ts[0] else 1.0


def _requested(d: dict[str, Any]) -> list[float]:
    """The requested rate in each window: the plan's profile averaged over the window."""
    plans = d.get("manifest", {}).get("plan") or []
    stages = [s for p in plans[:1] for s in (p.get("profile") or []) if s and s[0] is not None]
    length = _window(d)
    out = []
    for row in d["series"]:
        t0, t1 = row["t"], row["t"] + length
        slots, start = 0.0, 0.0
        for duration, a, b in stages:
            end = start + duration
            lo, hi = max(t0, start), min(t1, end)
            if hi > lo and duration > 0 and math.isfinite(duration):
                ra = a + (b - a) * (lo - start) / duration
                rb = a + (b - a) * (hi - start) / duration
                slots += (ra + rb) / 2 * (hi - lo)
            elif hi > lo:
                slots += a * (hi - lo)
            start = end
        out.append(round(slots / (t1 - t0), 3))
    return out


def _spectrum(d: dict[str, Any]) -> list[list[float]]:
    """(1/(1-p), latency ms) at the spectrum's percentiles, from the merged histogram."""
    from hdrh.histogram import HdrHistogram

    encoded = d.get("histograms", {}).get("latency")
    if not encoded:
        return []
    h = HdrHistogram.decode(encoded if isinstance(encoded, bytes) else encoded.encode())
    if not h.get_total_count():
        return []
    return [[1 / (1 - p / 100), h.get_value_at_percentile(p) / 1000] for p in _SPECTRUM]


def _data(d: dict[str, Any]) -> dict[str, Any]:
    series = d["series"]
    return {
        "t": [r["t"] for r in series],
        "requested": _requested(d),
        "achieved": [r["started"] / _window(d) for r in series],
        "p50": [r["p50_ms"] for r in series],
        "p99": [r["p99_ms"] for r in series],
        "failed": [r["failed"] for r in series],
        "canceled": [r["canceled"] for r in series],
        "spectrum": _spectrum(d),
    }


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    return f"{v:,.3f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")


def _summary(reports: list[dict[str, Any]], names: list[str]) -> str:
    if len(reports) == 1:
        return _table(["", names[0]], [[label, _fmt(_get(reports[0], path), unit)] for label, path, unit in _ROWS])
    rows = []
    for label, path, unit in _ROWS:
        a, b = _get(reports[0], path), _get(reports[1], path)
        delta = "—" if a is None or b is None else _fmt(b - a, unit)
        pct = "" if a in (None, 0) or b is None else f" ({(b - a) / abs(a):+.1%})"
        rows.append([label, _fmt(a, unit), _fmt(b, unit), delta + pct])
    return _table(["", names[0], names[1], "B - A"], rows)


def _agents(d: dict[str, Any]) -> str:
    rows = [[a["name"], a["host"], a["package"], a["share"], a["counts"]["scheduled"], a["counts"]["succeeded"],
             a["counts"]["failed"], a["counts"]["canceled"], a["counts"]["unfired"], a["clock_offset_ms"],
             a.get("cpu_percent"), a["state"]] for a in d.get("agents", [])]  # fmt: skip
    if not rows:
        return ""
    headers = ["agent", "host", "version", "share", "scheduled", "ok", "failed", "canceled", "unfired", "offset ms",
               "cpu %", "state"]  # fmt: skip
    return "<h2>Agents</h2>" + _table(headers, rows)


def _by_name(d: dict[str, Any], name: str) -> str:
    """The tables by scenario and by call name (reports from before them have neither)."""
    out = ""
    scenarios = d.get("scenarios") or []
    if scenarios:
        rows = []
        for s in scenarios:
            c, lat, svc = s["counts"], s["latency_ms"], s["service_time_ms"]
            rate = "—" if s["latency_is_service_time"] else _fmt(s["requested_rps"])
            rows.append([s["name"], s["model"], s["load"], rate, _fmt(s["throughput_rps"]), c["planned"],
                         c["scheduled"], c["succeeded"], c["failed"], c["canceled"], _fmt(lat["p50"]), _fmt(lat["p99"]),
                         _fmt(svc["p99"]), _errors(s["errors"])])  # fmt: skip
        headers = ["scenario", "model", "load", "requested/s", "throughput/s", "planned", "scheduled", "ok", "failed",
                   "canceled", "latency p50 ms", "latency p99 ms", "service p99 ms", "errors"]  # fmt: skip
        closed = [s["name"] for s in scenarios if s["latency_is_service_time"]]
        note = (
            f"<p>{html.escape(', '.join(closed))}: closed model (users or lanes): a closed loop cannot see "
            "coordinated omission, so its latency is service time; its output is the throughput.</p>"
            if closed
            else ""
        )
        out += f"<h2>Scenarios: {html.escape(name)}</h2>" + _table(headers, rows) + note
    names = d.get("names") or []
    if names:
        rows = [[n["name"], n["calls"], n["succeeded"], n["failed"], _fmt(n["latency_ms"]["p50"]),
                 _fmt(n["latency_ms"]["p90"]), _fmt(n["latency_ms"]["p99"]), _fmt(n["latency_ms"]["max"]),
                 _fmt(n["service_time_ms"]["p99"]), _errors(n["errors"])] for n in names]  # fmt: skip
        headers = ["name", "calls", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms", "service p99 ms", "errors"]
        out += f"<h2>By name: {html.escape(name)}</h2>" + _table(headers, rows)
    return out


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in list(errors.items())[:5]) + (" ..." if len(errors) > 5 else "")


def render_html(reports: list[dict[str, Any]], names: list[str] | None = None) -> str:
    """One report (or two, compared) as a self-contained HTML page."""
    if not 1 <= len(reports) <= 2:
        raise ValueError("an HTML report shows one run, or compares two")
    names = names or [r.get("target", "run") for r in reports]
    if len(reports) == 2 and names[0] == names[1]:
        names = [f"A: {names[0]}", f"B: {names[1]}"]
    payload = {"names": names, "runs": [_data(d) for d in reports]}
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    first = reports[0]
    parts = [_summary(reports, names)]
    for d, name in zip(reports, names, strict=True):
        thresholds = [[t["threshold"], _fmt(t["value"], t["unit"]), "ok" if t["ok"] else "FAILED"]
                      for t in d.get("thresholds", [])]  # fmt: skip
        if thresholds:
            parts.append(f"<h2>Thresholds: {html.escape(name)}</h2>" + _table(["threshold", "value", ""], thresholds))
        if d.get("warnings"):
            items = "".join(f"<li>{html.escape(w)}</li>" for w in d["warnings"])
            parts.append(f"<h2>Warnings: {html.escape(name)}</h2><ul class='warn'>{items}</ul>")
        parts.append(_by_name(d, name))
        if len(reports) == 1:
            parts.append(_agents(d))
    manifest = html.escape(json.dumps(first.get("manifest", {}), indent=1))
    title = html.escape(" vs ".join(names))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pusher-farm: {title}</title>
<style>{_static("uPlot.min.css")}
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; max-width: 1200px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ padding: 3px 10px; border-bottom: 1px solid #e3e6ec; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .warn li {{ color: #9a3412; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 16px; }}
details pre {{ font-size: 12px; background: #f6f7f9; padding: 8px; overflow: auto; }}
</style></head><body>
<h1>pusher-farm report: {title}</h1>
<p>{html.escape(str(first.get("profile", "")))} · schema {html.escape(str(first.get("schema", "")))}</p>
<div class="charts" id="charts"></div>
{"".join(parts)}
<details><summary>Manifest</summary><pre>{manifest}</pre></details>
<script id="data" type="application/octet-stream">{data}</script>
<script>{_static("uPlot.iife.min.js")}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


_SCRIPT = r"""
(function () {
  const payload = JSON.parse(atob(document.getElementById("data").textContent));
  const colors = [["#2563eb", "#93c5fd"], ["#dc2626", "#fca5a5"]];
  const box = document.getElementById("charts");
  function chart(title, runs, pick, labels, opts) {
    let xs = runs[0].t, cols = [];
    const ser = [{}];
    runs.forEach((r, i) => pick(r).forEach((col, j) => {
      cols.push(col);
      ser.push({ label: payload.names[i] + " " + labels[j], stroke: colors[i][j % 2], width: 1.5,
                 dash: opts.dashFirst && j === 0 ? [6, 4] : undefined });
    }));
    // runs of different lengths: pad to the longest
    runs.forEach(r => { if (r.t.length > xs.length) xs = r.t; });
    cols = cols.map(c => xs.map((_, k) => (k < c.length ? c[k] : null)));
    const el = document.createElement("div");
    box.appendChild(el);
    new uPlot({ title, width: 560, height: 260, series: ser, scales: { x: { time: false } },
      axes: [{ label: "seconds" }, { label: opts.y }] }, [xs, ...cols], el);
  }
  const runs = payload.runs;
  chart("Rate: requested vs achieved (calls/s)", runs, r => [r.requested, r.achieved],
        ["requested", "achieved"], { y: "calls/s", dashFirst: true });
  chart("Latency percentiles over time (ms)", runs, r => [r.p50, r.p99], ["p50", "p99"], { y: "ms" });
  chart("Errors and cancels per window", runs, r => [r.failed, r.canceled], ["failed", "canceled"], { y: "calls" });
  const spec = runs.filter(r => r.spectrum.length);
  if (spec.length) {
    const xs = spec[0].spectrum.map(p => p[0]);
    const ser = [{}], cols = [];
    runs.forEach((r, i) => { if (r.spectrum.length) {
      ser.push({ label: payload.names[i], stroke: colors[i][0], width: 2, points: { show: true } });
      cols.push(r.spectrum.map(p => p[1]));
    }});
    const el = document.createElement("div");
    box.appendChild(el);
    new uPlot({ title: "Latency by percentile (HDR spectrum)", width: 560, height: 260, series: ser,
      scales: { x: { time: false, distr: 3 } },
      axes: [{ label: "percentile", splits: () => [2, 10, 100, 1000, 10000],
               values: (u, v) => v.map(x => (x <= 1 ? "0" : String(+(100 - 100 / x).toFixed(2))) + "%") },
             { label: "ms" }] }, [xs, ...cols], el);
  }
  document.body.setAttribute("data-charts", String(box.querySelectorAll(".uplot").length));
})();
"""
