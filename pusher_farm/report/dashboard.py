"""The coordinator's live page (``GET /`` with ``--http``): rate, latency and errors charts that
update every second, the agents table and a rate control, in one self-contained page (uPlot
inlined: it works on a host with no internet). A token, when the server asks for one, is read
from the page address's fragment (``http://host:port/#token=TOKEN``) and sent with each call."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["page"]


def _static(name: str) -> str:
    return (files("pusher_farm.report") / "static" / name).read_text(encoding="utf-8")


def page() -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pusher-farm: live</title>
<style>{_static("uPlot.min.css")}
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; max-width: 1200px; }}
h1 {{ font-size: 20px; }} #state {{ margin: 8px 0 16px; }} .pill {{ padding: 2px 8px; border-radius: 9px;
background: #e0e7ff; }} table {{ border-collapse: collapse; }} td, th {{ padding: 3px 10px;
border-bottom: 1px solid #e3e6ec; text-align: right; }} td:first-child, th:first-child {{ text-align: left; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 16px; }}
form {{ margin: 16px 0; }} input {{ width: 90px; }} #answer {{ margin-left: 8px; }}
</style></head><body>
<h1>pusher-farm: live</h1>
<div id="state">connecting…</div>
<form id="change">rate <input id="rps" type="number" min="0" step="any"> calls/s &nbsp; overtime
<input id="overtime" type="number" min="0" step="1"> <button>change</button><span id="answer"></span></form>
<div class="charts" id="charts"></div>
<h2>Agents</h2><table id="agents"><thead><tr><th>agent</th><th>host</th><th>state</th><th>share</th>
<th>cpu %</th><th>rtt ms</th><th>offset ms</th></tr></thead><tbody></tbody></table>
<script>{_static("uPlot.iife.min.js")}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


_SCRIPT = r"""
(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const box = document.getElementById("charts");
  // what peers and targets named goes in as text, never as markup
  const esc = v => String(v ?? "—").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
  function make(title, labels, strokes, y) {
    const el = document.createElement("div");
    box.appendChild(el);
    const series = [{}].concat(labels.map((l, i) => ({ label: l, stroke: strokes[i], width: 1.5 })));
    return new uPlot({ title, width: 560, height: 240, series, scales: { x: { time: false } },
      axes: [{ label: "seconds" }, { label: y }] }, [[]].concat(labels.map(() => [])), el);
  }
  const charts = {
    rate: make("Rate: requested vs achieved (calls/s)", ["requested", "achieved"], ["#94a3b8", "#2563eb"], "calls/s"),
    latency: make("Latency per window (ms)", ["p50", "p99"], ["#2563eb", "#93c5fd"], "ms"),
    errors: make("Errors and cancels per window", ["failed", "canceled"], ["#dc2626", "#f59e0b"], "calls"),
  };
  async function get(path) {
    const r = await fetch(path, { headers });
    if (!r.ok) throw new Error(path + ": " + r.status);
    return r.json();
  }
  async function tick() {
    try {
      const farm = await get("/farm");
      const windows = await get("/windows");
      const c = farm.totals;
      document.getElementById("state").innerHTML =
        `<span class="pill">${esc(farm.state)}</span> run ${esc(farm.run)} · ${esc(farm.target)} · requested ` +
        `${farm.requested_rps.toFixed(1)}/s · achieved ${farm.achieved_rps.toFixed(1)}/s · ` +
        `ok ${c.succeeded} · failed ${c.failed} · canceled ${c.canceled} · in flight ${c.in_flight}` +
        (farm.latency_ms.p99 !== undefined ? ` · p99 ${farm.latency_ms.p99.toFixed(3)} ms` : "");
      const rows = farm.agents.map(a => `<tr><td>${esc(a.name)}</td><td>${esc(a.host)}</td><td>${esc(a.state)}</td>` +
        `<td>${esc(a.share)}</td><td>${esc(a.cpu_percent)}</td><td>${esc(a.rtt_ms)}</td>` +
        `<td>${esc(a.clock_offset_ms)}</td></tr>`);
      document.querySelector("#agents tbody").innerHTML = rows.join("");
      const t = windows.map(w => w.t);
      charts.rate.setData([t, windows.map(w => w.requested), windows.map(w => w.achieved)]);
      charts.latency.setData([t, windows.map(w => w.p50_ms), windows.map(w => w.p99_ms)]);
      charts.errors.setData([t, windows.map(w => w.failed), windows.map(w => w.canceled)]);
      document.body.setAttribute("data-updated", String(windows.length));
    } catch (e) {
      document.getElementById("state").textContent = "not reachable: " + e.message;
    }
  }
  document.getElementById("change").addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = {};
    const rps = document.getElementById("rps").value, overtime = document.getElementById("overtime").value;
    if (rps) body.rps = Number(rps);
    if (overtime) body.overtime = Number(overtime);
    const r = await fetch("/farm", { method: "PATCH", headers: Object.assign({ "Content-Type": "application/json" },
      headers), body: JSON.stringify(body) });
    const answer = await r.json();
    document.getElementById("answer").textContent = r.ok ? `from slot ${answer.epoch.from_slot} at ` +
      `${answer.epoch.at_s.toFixed(2)} s` : answer.error;
  });
  document.body.setAttribute("data-charts", String(box.querySelectorAll(".uplot").length));
  tick();
  setInterval(tick, 1000);
})();
"""
