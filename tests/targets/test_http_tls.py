"""HTTPS at rate through `farm run`, as a new user would: a cold start no longer storms.

A TLS server made here (aiohttp, a self-signed certificate) takes 1,000 calls/s for 2 s from
`farm run http -p 1` with default settings. Before the connect bound, every due slot opened a
connection of its own: handshakes took the generator's CPU, calls piled up, windows fired in
bursts and thousands of connections were opened. What is checked is that behaviour, not
timing (the figures are in scripts/bench_http.py's TLS rungs).
"""

import json
import ssl

import pytest
from farm_cli import farm

from pusher_farm.demo import DemoServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_server(self_signed):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    with DemoServer(tls=context) as server:
        yield server


def run(url, tmp_path, *extra, rps=1000):
    out = tmp_path / "r.json"
    p = farm("run", "http", "--url", url, "--param", "verify=false", "--rps", str(rps), "-d", "2s", "-p", "1",
             "--json", str(out), "-q", *extra, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text()), p.stdout


@pytest.mark.parametrize(("engine", "rps", "most"), [("lean", 1000, 100), ("aiohttp", 400, 200)])
def test_a_cold_start_over_tls_fires_every_window(tls_server, tmp_path, engine, rps, most):
    """The aiohttp engine at the rate it keeps on a loaded machine (about a tenth of lean's top)."""
    d, summary = run(tls_server.url, tmp_path, "--engine", engine, rps=rps)
    c = d["counts"]
    calls = 2 * rps
    assert c["planned"] == c["scheduled"] == calls and c["succeeded"] == calls, (c, d["errors"])
    windows = [w["started"] + w["canceled"] for w in d["series"][:2]]
    # Every window fired its slots (give or take the few a 4 ms batch launches early), none in a burst.
    assert all(abs(n - rps) <= 10 for n in windows), windows
    assert all(w["canceled"] == 0 for w in d["series"][1:])
    opened = d["target_counters"]["connections_opened"]
    assert opened < most, opened  # not one per call
    phases = d["phases_ms"]
    assert phases["connect"]["calls"] == opened if engine == "lean" else phases["connect"]["calls"] <= opened
    assert phases["ttfb"]["calls"] == calls
    assert "connect" in summary and "ttfb" in summary  # the phases in the summary table


def test_a_warm_pool_leaves_no_connecting_in_the_measured_run(tls_server, tmp_path):
    # 32 connections carry 400 calls/s while the server answers within 80 ms, a loaded machine too
    d, _ = run(tls_server.url, tmp_path, "--warm", "32", rps=400)
    counters = d["target_counters"]
    assert counters["connections_warmed"] == 32 and d["counts"]["succeeded"] == 800
    during = counters["connections_opened"] - counters["connections_warmed"]
    assert d["phases_ms"].get("connect", {"calls": 0})["calls"] == during <= 8
    assert "wait" not in d["phases_ms"] or d["phases_ms"]["wait"]["calls"] <= 8
