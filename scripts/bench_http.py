#!/usr/bin/env python
"""HTTP benchmark, side by side: wrk, Locust FastHttpUser and ``farm run http`` (lean, aiohttp).

One local nginx (one worker pinned to the last CPU) serves a 3-byte body over keep-alive; every
generator runs pinned to CPU 0, one after another, in interleaved rounds (medians printed).
Two figures per generator:

* **max req/s** - wrk and Locust closed-loop with 50 connections/users; ``farm run`` open-loop
  asked for more than it can do (``--max-rps``) with ``--overtime 50`` (so at most 50
  connections) and ``--spin 2ms``: the responses per second it completed, every slot accounted;
* **CPU-s per 1k requests at a fixed rate** (2,000 req/s): CPU of the generator's whole process
  tree (for ``farm run``: coordinator + agent) over the steady part of the run (after a warm-up,
  before the end), divided by the requests sent in that span. wrk has no fixed-rate mode.

Needs nginx and wrk (``apt-get install nginx-light wrk``); Locust is used when a ``locust``
command is found (``--locust PATH``, default: on PATH or /opt/locustenv/bin/locust; install it
in a virtualenv of its own: ``python -m venv /opt/locustenv && /opt/locustenv/bin/pip install
locust``). Not run in CI. Prints a table with ratios and writes JSON (default
bench-results/bench_http.json).

HTTPS rungs (the same nginx serving TLS): the most calls/s on one core; cold starts at 2,000/s
and 10,000/s with the default connect bound, with ``--warm 64``, and unbounded (as before the
bound); aiohttp's cold start; and CPU per 1k calls (generator and nginx) when nginx closes every
10th response, with and without TLS session resumption.

Usage: python scripts/bench_http.py [--rounds 3] [--duration 8] [--quick] [--tls-only | --no-tls] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
GEN_CPU = "0"
FIXED_RPS = 2000

LOCUSTFILE = textwrap.dedent(
    """
    from locust import FastHttpUser, task, constant, constant_throughput
    import os

    class U(FastHttpUser):
        if os.environ.get("BENCH_PER_USER_RPS"):
            wait_time = constant_throughput(float(os.environ["BENCH_PER_USER_RPS"]))
        else:
            wait_time = constant(0)

        @task
        def get(self):
            self.client.get("/")
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on 127.0.0.1: ``url`` plain HTTP; ``tls_url`` HTTPS (a self-signed certificate);
    ``reconnect_url`` HTTPS that closes every 10th response (a reconnect-heavy load)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        tls_port, reconnect_port = free_port(), free_port()
        self.tls_url = f"https://127.0.0.1:{tls_port}/"
        self.reconnect_url = f"https://127.0.0.1:{reconnect_port}/"
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "2", "-subj", "/CN=127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        tls = f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_session_cache shared:tls:10m;"
        cpus = os.cpu_count() or 1
        mask = "1" + "0" * (cpus - 1)  # the last CPU
        (workdir / "nginx.conf").write_text(
            textwrap.dedent(
                f"""
                worker_processes 1;
                worker_cpu_affinity {mask};
                daemon off;
                pid {workdir}/nginx.pid;
                error_log {workdir}/error.log crit;
                events {{ worker_connections 16384; }}
                http {{
                  access_log off;
                  keepalive_requests 100000000;
                  keepalive_timeout 300s;
                  client_body_temp_path {workdir};
                  proxy_temp_path {workdir};
                  fastcgi_temp_path {workdir};
                  uwsgi_temp_path {workdir};
                  scgi_temp_path {workdir};
                  server {{
                    listen 127.0.0.1:{self.port} backlog=4096;
                    location / {{ return 200 "ok\\n"; }}
                  }}
                  server {{
                    listen 127.0.0.1:{tls_port} ssl backlog=4096;
                    {tls}
                    location / {{ return 200 "ok\\n"; }}
                  }}
                  server {{
                    listen 127.0.0.1:{reconnect_port} ssl backlog=4096;
                    {tls}
                    keepalive_requests 10;
                    location / {{ return 200 "ok\\n"; }}
                  }}
                }}
                """
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        self.proc = subprocess.Popen(["nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nginx did not start: see " + str(self.dir / "error.log"))

    def worker_cpu(self) -> float:
        """CPU-s used so far by nginx's worker processes."""
        assert self.proc is not None
        return tree_cpu(psutil.Process(self.proc.pid))

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", GEN_CPU, *cmd]


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def steady_cpu(cmd: list[str], warm: float, span: float, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run ``cmd``; CPU-s of its process tree between ``warm`` and ``warm + span`` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    ps = psutil.Process(proc.pid)
    time.sleep(warm)
    c0 = tree_cpu(ps)
    time.sleep(span)
    c1 = tree_cpu(ps)
    out, _ = proc.communicate(timeout=120)
    return c1 - c0, out.decode(errors="replace")


def farm_cmd(url: str, rps: float, duration: float, json_path: Path, engine: str, extra: list[str]) -> list[str]:
    tls = ["--param", "verify=false"] if url.startswith("https") else []
    return [
        sys.executable, "-m", "pusher_farm", "run", "http", "--url", url, "--engine", engine,
        "--rps", str(rps), "--duration", f"{duration}s", "--timeout", "10s", "--json", str(json_path), "-q",
        "-p", "1", *tls, *extra,
    ]  # fmt: skip


def farm_max(url: str, engine: str, rps: float, duration: float, tmp: Path) -> dict:
    out = tmp / f"farm-{engine}-max.json"
    cmd = pinned(farm_cmd(url, rps, duration, out, engine, ["--overtime", "50", "--spin", "2ms"]))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    report = json.loads(out.read_text())
    c = report["counts"]
    assert c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"], c
    return {
        "rps": c["succeeded"] / duration,
        "failed": c["failed"],
        "errors": report["errors"],
        "latency_p50_ms": report["latency_ms"]["p50"],
        "latency_p99_ms": report["latency_ms"]["p99"],
    }


def farm_fixed(url: str, engine: str, duration: float, tmp: Path) -> dict:
    out = tmp / f"farm-{engine}-fixed.json"
    warm, span = 3.0, duration - 5.0
    cmd = pinned(farm_cmd(url, FIXED_RPS, duration, out, engine, []))
    cpu, _ = steady_cpu(cmd, warm, span)
    report = json.loads(out.read_text())
    c = report["counts"]
    ok = c["succeeded"] == c["scheduled"]
    return {"cpu_s_per_1k": cpu / (FIXED_RPS * span / 1000), "all_ok": ok, "errors": report["errors"]}


def farm_cold(url: str, engine: str, rps: float, duration: float, tmp: Path, extra: list[str]) -> dict:
    """A cold start at ``rps``: what the first second and the rest looked like."""
    out = tmp / f"farm-{engine}-cold.json"
    subprocess.run(pinned(farm_cmd(url, rps, duration, out, engine, extra)), check=True, stdout=subprocess.DEVNULL)
    r = json.loads(out.read_text())
    series = r["series"][: int(duration)]
    counters = r["target_counters"]
    return {
        "fired_per_window": [w["started"] + w["canceled"] for w in series],
        "latency_p99_ms": r["latency_ms"]["p99"],
        "first_second_p99_ms": series[0]["p99_ms"],
        "later_p99_ms_max": max(w["p99_ms"] for w in series[1:]),
        "lag_p99_ms": r["schedule_lag_ms"]["p99"],
        "canceled": r["counts"]["canceled"],
        "failed": r["counts"]["failed"],
        "connections_opened": counters.get("connections_opened", 0),
        "connections_warmed": counters.get("connections_warmed", 0),
    }


def farm_reconnect(nginx: Nginx, resume: bool, duration: float, tmp: Path) -> dict:
    """CPU per 1k calls of the generator and of nginx at 2,000/s when nginx closes every 10th
    response, with and without TLS session resumption."""
    out = tmp / "farm-reconnect.json"
    warm, span = 3.0, duration - 5.0
    cmd = pinned(farm_cmd(nginx.reconnect_url, FIXED_RPS, duration, out, "lean", ["--param", f"resume={resume}"]))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    time.sleep(warm)
    g0, n0 = tree_cpu(ps), nginx.worker_cpu()
    time.sleep(span)
    g1, n1 = tree_cpu(ps), nginx.worker_cpu()
    proc.wait(120)
    r = json.loads(out.read_text())
    calls = FIXED_RPS * span / 1000
    return {
        "generator_cpu_s_per_1k": (g1 - g0) / calls,
        "nginx_cpu_s_per_1k": (n1 - n0) / calls,
        "failed": r["counts"]["failed"],
        **{k: v for k, v in r["target_counters"].items() if k.startswith("tls")},
    }


def tls_rungs(nginx: Nginx, rounds: int, duration: float, tmp: Path, add: Callable[[str, str, dict], None]) -> None:
    for r in range(rounds):
        print(f"TLS round {r + 1}/{rounds}", flush=True)
        add("farm lean tls", "max", farm_max(nginx.tls_url, "lean", 200_000, duration, tmp))
        for rps in (2000, 10_000):
            add("farm lean tls", f"cold {rps}", farm_cold(nginx.tls_url, "lean", rps, duration, tmp, []))
            add("farm lean tls", f"warm {rps}", farm_cold(nginx.tls_url, "lean", rps, duration, tmp, ["--warm", "64"]))
            unbounded = ["--param", "connecting=100000"]  # as before the bound: one connect per due call
            add("farm lean tls", f"unbounded {rps}", farm_cold(nginx.tls_url, "lean", rps, duration, tmp, unbounded))
        add("farm aiohttp tls", "cold 2000", farm_cold(nginx.tls_url, "aiohttp", 2000, duration, tmp, []))
        add("farm lean tls", "reconnect resume", farm_reconnect(nginx, True, 15.0, tmp))
        add("farm lean tls", "reconnect no resume", farm_reconnect(nginx, False, 15.0, tmp))


def wrk_max(url: str, duration: float) -> dict:
    out = subprocess.run(
        pinned(["wrk", "-t1", "-c50", f"-d{int(duration)}s", url]), check=True, capture_output=True, text=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else ""}


def locust_cmd(locust: str, url: str, users: int, duration: float, tmp: Path) -> list[str]:
    return [
        locust, "-f", str(tmp / "locustfile.py"), "--headless", "-u", str(users), "-r", str(users),
        "-t", f"{int(duration)}s", "--host", url.rstrip("/"), "--csv", str(tmp / "locust"), "--only-summary",
        "--loglevel", "ERROR",
    ]  # fmt: skip


def locust_stats(tmp: Path) -> dict:
    text = (tmp / "locust_stats.csv").read_text().splitlines()
    header = text[0].split(",")
    for line in text[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("Name") == "Aggregated":
            return row
    raise RuntimeError("no Aggregated row in locust's CSV")


def locust_max(locust: str, url: str, duration: float, tmp: Path) -> dict:
    # Locust ramps users at -r per second; all 50 start within the first second.
    subprocess.run(pinned(locust_cmd(locust, url, 50, duration, tmp)), check=False, capture_output=True)
    row = locust_stats(tmp)
    return {"rps": float(row["Requests/s"]), "failures": int(row["Failure Count"])}


def locust_fixed(locust: str, url: str, duration: float, tmp: Path) -> dict:
    users = 50
    env = {**os.environ, "BENCH_PER_USER_RPS": str(FIXED_RPS / users)}
    warm, span = 3.0, duration - 5.0
    cpu, _ = steady_cpu(pinned(locust_cmd(locust, url, users, duration, tmp)), warm, span, env)
    row = locust_stats(tmp)
    return {"cpu_s_per_1k": cpu / (FIXED_RPS * span / 1000), "achieved_rps": float(row["Requests/s"])}


def find_locust(given: str | None) -> str | None:
    for candidate in (given, shutil.which("locust"), "/opt/locustenv/bin/locust"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per max-rate run")
    ap.add_argument("--fixed-duration", type=float, default=15.0, help="seconds per fixed-rate run")
    ap.add_argument("--max-rps", type=float, default=200_000, help="rate asked of farm run for its max")
    ap.add_argument("--locust", help="the locust command (default: on PATH or /opt/locustenv/bin/locust)")
    ap.add_argument("--quick", action="store_true", help="1 round, shorter runs")
    ap.add_argument("--tls-only", action="store_true", help="only the HTTPS rungs")
    ap.add_argument("--no-tls", action="store_true", help="skip the HTTPS rungs")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "bench_http.json"))
    args = ap.parse_args()
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(
            f"bench_http: {', '.join(missing)} not found: apt-get install nginx-light wrk util-linux", file=sys.stderr
        )
        return 2
    if args.quick:
        args.rounds, args.duration, args.fixed_duration = 1, 4.0, 10.0
    locust = find_locust(args.locust)
    if locust is None:
        print("bench_http: Locust not found (python -m venv /opt/locustenv && /opt/locustenv/bin/pip install locust)")
    results: dict[str, dict[str, list]] = {}

    def add(name: str, key: str, figures: dict) -> None:
        results.setdefault(name, {}).setdefault(key, []).append(figures)
        print(f"  {name:<16} {key:<6} {figures}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_http-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "locustfile.py").write_text(LOCUSTFILE)
        with Nginx(tmp) as nginx:
            url = nginx.url
            for r in range(0 if args.tls_only else args.rounds):
                print(f"round {r + 1}/{args.rounds}", flush=True)
                add("wrk", "max", wrk_max(url, args.duration))
                add("farm lean", "max", farm_max(url, "lean", args.max_rps, args.duration, tmp))
                add("farm aiohttp", "max", farm_max(url, "aiohttp", args.max_rps / 10, args.duration, tmp))
                if locust:
                    add("locust fasthttp", "max", locust_max(locust, url, args.duration, tmp))
                add("farm lean", "fixed", farm_fixed(url, "lean", args.fixed_duration, tmp))
                add("farm aiohttp", "fixed", farm_fixed(url, "aiohttp", args.fixed_duration, tmp))
                if locust:
                    add("locust fasthttp", "fixed", locust_fixed(locust, url, args.fixed_duration, tmp))
            if not args.no_tls:
                tls_rungs(nginx, args.rounds, args.duration, tmp, add)

    tls = {name: runs for name, runs in results.items() if name.endswith("tls")}
    results = {name: runs for name, runs in results.items() if not name.endswith("tls")}
    print_tls(tls)
    if not results:
        return _write(Path(args.out), {"tls": tls})
    table = {}
    for name, runs in results.items():
        table[name] = {
            "max_rps": med([f["rps"] for f in runs.get("max", [])]),
            "cpu_s_per_1k_at_2k": med([f["cpu_s_per_1k"] for f in runs.get("fixed", [])]),
        }
    wrk = table["wrk"]["max_rps"]
    loc = table.get("locust fasthttp", {})
    print(f"\nnginx 1 worker on CPU {os.cpu_count() - 1}, generators pinned to CPU {GEN_CPU}; medians of {args.rounds}")
    print(f"{'generator':<18}{'max req/s':>12}{'/ wrk':>8}{'/ locust':>10}{'CPU-s/1k @2k':>14}{'locust /':>10}")
    for name, t in table.items():
        ratio_wrk = t["max_rps"] / wrk
        ratio_loc = t["max_rps"] / loc["max_rps"] if loc else float("nan")
        cpu = t["cpu_s_per_1k_at_2k"]
        saving = loc["cpu_s_per_1k_at_2k"] / cpu if loc and cpu == cpu else float("nan")
        print(f"{name:<18}{t['max_rps']:>12.0f}{ratio_wrk:>8.2f}{ratio_loc:>10.1f}{cpu:>14.4f}{saving:>10.1f}")
    return _write(
        Path(args.out), {"table": table, "runs": results, "tls": tls, "rounds": args.rounds, "fixed_rps": FIXED_RPS}
    )


def print_tls(tls: dict[str, dict[str, list]]) -> None:
    """Medians of each TLS rung."""
    if not tls:
        return
    print("\nHTTPS (nginx, TLS, self-signed RSA 2048), generator pinned to CPU 0; medians")
    for name, runs in tls.items():
        for key, figures in runs.items():
            numeric = {k for k, v in figures[0].items() if isinstance(v, (int, float))}
            medians = {k: round(med([f[k] for f in figures]), 4) for k in sorted(numeric)}
            print(f"  {name:<18} {key:<20} {medians}")


def _write(out: Path, data: dict) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
