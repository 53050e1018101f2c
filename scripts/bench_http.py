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

Usage: python scripts/bench_http.py [--rounds 3] [--duration 8] [--quick] [--out PATH]
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
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
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
                events {{ worker_connections 4096; }}
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
    return [
        sys.executable, "-m", "pusher_farm", "run", "http", "--url", url, "--engine", engine,
        "--rps", str(rps), "--duration", f"{duration}s", "--timeout", "10s", "--json", str(json_path), "-q",
        "-p", "1", *extra,
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
            for r in range(args.rounds):
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"table": table, "runs": results, "rounds": args.rounds, "fixed_rps": FIXED_RPS}, indent=2)
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
