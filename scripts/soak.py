#!/usr/bin/env python
"""Soak: a long farm run that must hold its memory and file descriptors flat.

Runs `farm run TARGET --rps R --duration D -p N` (default: noop at 5,000/s for 10 minutes on
2 local agents) and samples the coordinator's and every agent's RSS and open file descriptors
every few seconds. After the warm-up, RSS must stay within 10% of its first reading and the
descriptors must not grow. Not run in CI. Prints a table, writes JSON (bench-results/soak.json).

Usage: python scripts/soak.py [--rps 5000] [--duration 10m] [--processes 2] [--target noop]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil


def sample(proc: psutil.Process) -> dict[str, dict[str, int]]:
    out = {}
    for role, p in [("coordinator", proc), *[(f"agent-{c.pid}", c) for c in proc.children()]]:
        try:
            out[role] = {"rss": p.memory_info().rss, "fds": p.num_fds()}
        except psutil.Error:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rps", default="5000")
    ap.add_argument("--duration", default="10m")
    ap.add_argument("--processes", default="2")
    ap.add_argument("--target", default="noop")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    ap.add_argument("--out", default="bench-results/soak.json")
    args = ap.parse_args()
    report = Path(args.out).with_suffix(".report.json")
    report.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pusher_farm",
        "run",
        args.target,
        "--rps",
        args.rps,
        "--duration",
        args.duration,
        "-p",
        args.processes,
        "-q",
        "--json",
        str(report),
    ]
    print(" ".join(cmd))
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    proc = psutil.Process(child.pid)
    started = time.monotonic()
    samples = []
    while child.poll() is None:
        time.sleep(args.every)
        t = time.monotonic() - started
        s = sample(proc)
        if not s:
            continue
        samples.append({"t": round(t, 1), **s})
        cells = "  ".join(f"{k[:12]} {v['rss'] / 2**20:6.1f} MB {v['fds']:3d} fd" for k, v in sorted(s.items()))
        print(f"{t:7.1f}s  {cells}", flush=True)
    base = next((s for s in samples if s["t"] >= args.warmup), None)
    verdict: dict[str, dict[str, float | bool]] = {}
    if base is not None:
        for role in base:
            if role == "t":
                continue
            later = [s[role] for s in samples if s["t"] >= base["t"] and role in s]
            growth = max(x["rss"] for x in later) / base[role]["rss"] - 1
            fd_growth = max(x["fds"] for x in later) - base[role]["fds"]
            verdict[role] = {
                "rss_base_mb": round(base[role]["rss"] / 2**20, 1),
                "rss_max_growth_percent": round(100 * growth, 1),
                "fd_growth": fd_growth,
                "flat": growth <= 0.10 and fd_growth <= 0,
            }
    d = json.loads(report.read_text()) if report.exists() else {}
    result = {
        "command": cmd,
        "exit_status": child.returncode,
        "counts": d.get("counts"),
        "achieved_rps": d.get("achieved_rps"),
        "verdict": verdict,
        "samples": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for role, v in verdict.items():
        print(
            f"{role:20} base {v['rss_base_mb']} MB, max growth {v['rss_max_growth_percent']}%, "
            f"fd growth {v['fd_growth']}: {'flat' if v['flat'] else 'GROWING'}"
        )
    print(f"counts {result['counts']}, achieved {result['achieved_rps']}/s; wrote {args.out}")


if __name__ == "__main__":
    main()
