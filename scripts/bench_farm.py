#!/usr/bin/env python
"""Farm benchmark: rate accuracy across agents, coordinator cost, bytes on the wire.

Prints a table and writes JSON (default bench-results/bench_farm.json):

* rate accuracy (requested vs achieved, schedule lag p99) for 1, 2 and 4 local agent processes
  at 1k, 5k and 20k rps (noop target), and the bytes per agent-second the coordinator received;
* the coordinator's CPU share with 200 and 1,000 simulated agents, each sending one report
  window per second (a separate process plays the agents over real ZeroMQ sockets, so only
  the coordinator's own work is measured);
* scale-out: the highest no-op rate ``farm run -p 1`` and ``farm run -p 2`` sustain with < 1%
  shortfall and every slot accounted (coordinator included, all on this machine's cores).

Usage: python scripts/bench_farm.py [--quick] [--coordinator-only] [--scale-only] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def accuracy(agents: int, rate: int, duration: float) -> dict:
    from pusher_farm.cluster.spawn import run_local
    from pusher_farm.core.config import Config
    from pusher_farm.core.load import Open
    from pusher_farm.core.run import Run
    from pusher_farm.core.schedule import Constant
    from pusher_farm.report import to_dict

    spec = Run.of([Config(target="noop", load=Open(Constant(rate, duration)))])
    box = {}
    report = run_local(spec, agents, on_coordinator=lambda c: box.setdefault("c", c))
    coord = box["c"]
    d = to_dict(report)
    c = d["counts"]
    return {
        "agents": agents,
        "rps": rate,
        "achieved_rps": d["achieved_rps"],
        "error_percent": round(100 * (d["achieved_rps"] - rate) / rate, 3),
        "scheduled": c["scheduled"],
        "balanced": c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"],
        "per_agent_balanced": all(
            a["counts"]["scheduled"] == a["counts"]["succeeded"] + a["counts"]["failed"] + a["counts"]["canceled"]
            for a in d["agents"]
        ),
        "lag_p99_ms": d["schedule_lag_ms"]["p99"],
        "bytes_in_per_agent_s": round(coord.hub.bytes_in / agents / duration),
        "bytes_out_per_agent_s": round(coord.hub.bytes_out / agents / duration),
        "coordinator_cpu_percent": round(100 * coord.cpu_seconds / d["elapsed_s"], 2),
    }


# -- simulated agents -----------------------------------------------------------------------------


def simulate(endpoint: str, count: int, seconds: int, per_window: int) -> None:
    """Play ``count`` agents: hello, pongs, ready, then one window per second each, then done."""
    import zmq

    from pusher_farm.cluster.protocol.messages import decode, encode
    from pusher_farm.core.window import Window

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = zmq.Context()
    ctx.setsockopt(zmq.MAX_SOCKETS, count + 100)
    rng = np.random.default_rng(1)
    # A realistic window: one agent-second of `per_window` calls, three histograms.
    w = Window(0, 0.0, 1.0, started=per_window, succeeded=per_window, scenario="default")
    lat = rng.lognormal(7.5, 0.6, per_window).astype(np.int64)
    w.latency.record_many(lat)
    w.service.record_many((lat * 0.9).astype(np.int64))
    w.lag.record_many(rng.integers(0, 1200, per_window))
    wire = w.to_wire()
    socks = []
    for i in range(count):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IDENTITY, f"sim-{i}".encode())
        s.connect(endpoint)
        s.send(encode("hello", name=f"sim-{i}", host="sim", pid=i, capacity=1.0, cpus=1, package="bench"))
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    runs: dict[int, tuple[str, float]] = {}
    sent = [0] * count
    done = [False] * count
    while not all(done):
        for s, _ in poller.poll(20):
            i = socks.index(s)
            while True:
                try:
                    msg = decode(s.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
                now = time.monotonic()
                if msg.type == "ping":
                    s.send(encode("pong", id=msg["id"], t0=msg["t0"], t1=now, t2=now))
                elif msg.type == "prepare":
                    s.send(encode("ready", run=msg["run"]))
                elif msg.type == "start":
                    runs[i] = (msg["run"], msg["plan"]["start_at"] + msg["plan"]["offset"])
        now = time.monotonic()
        for i, (run, start) in runs.items():
            # Window k is sent at start + k + 1 + i/count: spread evenly over each second.
            while not done[i] and now >= start + sent[i] + 1 + i / count:
                if sent[i] < seconds:
                    wire["i"] = sent[i]
                    wire["t"] = float(sent[i])
                    socks[i].send(encode("window", run=run, seq=sent[i], w=wire))
                    sent[i] += 1
                else:
                    socks[i].send(encode("done", run=run, windows=seconds, stopped_early=False))
                    done[i] = True
    time.sleep(0.5)
    for s in socks:
        s.close(0)
    ctx.term()


def sustains(processes: int, rate: float, duration: float) -> dict:
    """One ``farm run noop -p N`` at ``rate``: achieved rate and whether every slot is counted."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [
            sys.executable, "-m", "pusher_farm", "run", "noop", "--rps", str(rate), "--duration", f"{duration}s",
            "-p", str(processes), "--json", str(out), "-q",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        d = json.loads(out.read_text())
    c = d["counts"]
    return {
        "processes": processes,
        "rate": rate,
        "achieved_rps": d["achieved_rps"],
        "shortfall": 1 - d["achieved_rps"] / rate,
        "canceled": c["canceled"],
        "balanced": c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"],
    }


def max_rate(processes: int, duration: float, low: float, high: float) -> tuple[float, list[dict]]:
    """Highest rate (to 5%) with < 1% shortfall, nothing canceled, every slot counted."""
    trials = []
    best = 0.0
    while high / low > 1.05:
        mid = (low * high) ** 0.5
        r = sustains(processes, round(mid), duration)
        trials.append(r)
        achieved, short = r["achieved_rps"], r["shortfall"]
        print(f"    -p {processes} {round(mid):>8}/s: achieved {achieved:>10.0f}/s shortfall {short:+.2%}")
        if r["shortfall"] < 0.01 and r["balanced"] and r["canceled"] == 0:
            best, low = max(best, r["achieved_rps"]), mid
        else:
            high = mid
    return best, trials


def coordinator_cost(count: int, seconds: int, per_window: int) -> dict:
    from pusher_farm.cluster.coordinator.coordinator import Coordinator
    from pusher_farm.cluster.timing import Timing
    from pusher_farm.core.config import Config
    from pusher_farm.core.load import Open
    from pusher_farm.core.run import Run
    from pusher_farm.core.schedule import Constant
    from pusher_farm.report import to_dict

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = Run.of([Config(target="noop", load=Open(Constant(count * 10.0, seconds)), overtime=100, timeout=1.0)])
    # Simulated agents are silent between windows: a generous agent timeout keeps them alive.
    timing = Timing(wait_timeout=120, agent_timeout=30, end_grace=30, start_lead=2.0)
    with Coordinator(spec, bind="tcp://127.0.0.1:*", expect=count, timing=timing) as coord:
        sim = subprocess.Popen(
            [sys.executable, __file__, "--simulate", coord.endpoint, str(count), str(seconds), str(per_window)]
        )
        cpu_marks: list[tuple[float, float]] = []

        def mark(window) -> None:
            cpu_marks.append((time.monotonic(), time.process_time()))

        coord.aggregator.listeners.append(mark)
        report = coord.serve()
        sim.wait(60)
    d = to_dict(report)
    # Steady state: between the first and the last merged window.
    (t0, c0), (t1, c1) = cpu_marks[1], cpu_marks[-2]
    return {
        "agents": count,
        "windows_per_second": count,
        "calls_per_window": per_window,
        "windows_received": sum(len(a.ledger.seqs) for a in coord.state.agents.values()),
        "coordinator_cpu_percent_steady": round(100 * (c1 - c0) / (t1 - t0), 2),
        "bytes_in_per_agent_s": round(coord.hub.bytes_in / count / seconds),
        "status": d["status"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument(
        "--calls-per-window", type=int, default=50_000, help="calls in each simulated agent-second (3 histograms)"
    )
    ap.add_argument("--coordinator-only", action="store_true", help="only the coordinator cost")
    ap.add_argument("--scale-only", action="store_true", help="only the scale-out runs")
    ap.add_argument("--out", default="bench-results/bench_farm.json")
    args = ap.parse_args()
    if args.simulate:
        endpoint, count, seconds, per_window = args.simulate
        simulate(endpoint, int(count), int(seconds), int(per_window))
        return
    duration = 3.0 if args.quick else 5.0
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    print(f"rate accuracy, noop, {duration:g} s per run (local agent processes on this host)")
    rows = []
    for agents in () if args.coordinator_only or args.scale_only else (1, 2, 4):
        for rate in (1_000, 5_000, 20_000):
            r = accuracy(agents, rate, duration)
            rows.append(r)
            print(
                f"  {agents} agents {rate:>6}/s  achieved {r['achieved_rps']:>9.1f}/s ({r['error_percent']:+.3f}%)"
                f"  lag p99 {r['lag_p99_ms']:7.3f} ms  balanced {r['balanced'] and r['per_agent_balanced']}"
                f"  wire in {r['bytes_in_per_agent_s']:>6} B/agent-s  coordinator cpu {r['coordinator_cpu_percent']}%"
            )
    results["accuracy"] = rows
    seconds = 10 if args.quick else 20
    print(f"coordinator cost, simulated agents each sending one window per second ({seconds} s)")
    cost = []
    for count in () if args.scale_only else (200, 1000):
        r = coordinator_cost(count, seconds, args.calls_per_window)
        cost.append(r)
        print(
            f"  {count:>5} agents: coordinator {r['coordinator_cpu_percent_steady']:5.1f}% of one core, "
            f"{r['bytes_in_per_agent_s']} B/agent-s in, {r['calls_per_window']} calls per window, status {r['status']}"
        )
    results["coordinator"] = cost
    if not args.coordinator_only:
        print(f"scale-out: highest noop rate with < 1% shortfall, farm run -p N, {duration:g} s runs")
        one, t1 = max_rate(1, duration, 50_000, 1_600_000)
        two, t2 = max_rate(2, duration, 50_000, 3_200_000)
        results["scale_out"] = {"p1_rps": one, "p2_rps": two, "ratio": two / one if one else None, "trials": t1 + t2}
        print(f"  -p 1: {one:,.0f}/s   -p 2: {two:,.0f}/s   ratio {two / one if one else float('nan'):.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
