#!/usr/bin/env python
"""Core executor benchmark: how fast and how exact is one process?

Prints a table and writes JSON (default bench-results/bench_core.json):

* the highest no-op rate one process sustains with < 1% shortfall (achieved rate measured over
  the time it really took to launch the calls, every slot accounted for);
* schedule lag p50/p99 at 10k/s, sleeping on the loop's timers and with ``--spin``;
* the accounting cost per call: the executor's own CPU per slot at a fixed rate, and the cost
  of stamping + folding one outcome into the three histograms, measured alone;
* the cost of names and scenarios at 100k calls/s: CPU per slot of a no-op target that names
  its calls (10 or 1,000 names), and of four scenarios at 25k/s each in one process, beside
  the plain no-op; and the highest rate of the 10-name target on the ladder.

Each trial runs in a fresh process. Usage: python scripts/bench_core.py [--quick] [--out PATH]
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

HERE = Path(__file__).resolve().parent


def trial(spec: dict) -> dict:
    """One run in this process; returns the figures as a dict."""
    import pusher_farm as pf
    from pusher_farm.core.loop import loop_name
    from pusher_farm.report import to_dict
    from pusher_farm.targets import resolve

    if spec["target"] == "async-noop":

        async def target(ctx):
            return None

    elif spec["target"].startswith("named-noop"):  # named-noop-N: N call names, in turn
        names = [f"GET /item/{i}" for i in range(int(spec["target"].rsplit("-", 1)[1]))]
        count = len(names)

        @pf.inline
        def target(ctx):
            ctx.name = names[ctx.seq % count]

    else:
        target = resolve(spec["target"])
    offers = [pf.with_spin(spec.get("spin", 0.0))]
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    if spec.get("scenarios"):  # that many scenarios side by side in this process, sharing the rate
        from pusher_farm.core import loop
        from pusher_farm.core.offers import _offer

        n = spec["scenarios"]
        workers = [pf.hire(f"s{i}", target, *offers, _offer(name=f"s{i}", max_names=2000)) for i in range(n)]
        report = loop.run(pf.farm_async(spec["rate"] / n, spec["duration"], workers))
    else:
        from pusher_farm.core.offers import _offer

        report = pf.work(spec["rate"], spec["duration"], target, *offers, _offer(max_names=2000))
    wall = time.monotonic() - wall0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    d = to_dict(report)
    c = d["counts"]
    return {
        **spec,
        "loop": loop_name(),
        "scheduled": c["scheduled"],
        "succeeded": c["succeeded"],
        "canceled": c["canceled"],
        "balanced": c["scheduled"] == c["succeeded"] + c["failed"] + c["canceled"],
        "achieved_rps": d["achieved_rps"],
        "send_duration_s": d["send_duration_s"],
        "shortfall": 1 - d["achieved_rps"] / spec["rate"],
        "lag_ms": d["schedule_lag_ms"],
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_us_per_slot": round(cpu / max(c["scheduled"], 1) * 1e6, 3),
    }


def run_trial(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--trial", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def accounting_cost(n: int = 200_000) -> dict:
    """ns per outcome to count it (the one outcome path: three appends) and fold it into three
    histograms."""
    from pusher_farm.core.calls import Calls, Context
    from pusher_farm.core.recorder import Recorder

    recorder = Recorder(1.0, lambda w: None)
    recorder.t0 = time.monotonic()
    calls = Calls(
        lambda ctx: None, ident="", overtime=1, timeout=None, recorder=recorder, hub=None, clock=time.monotonic
    )
    t0 = recorder.t0
    ctxs = [Context(k, t0 + k * 1e-6, t0 + k * 1e-6 + 5e-6, None, "") for k in range(n)]
    end = t0 + 0.5
    t = time.perf_counter()
    for ctx in ctxs:
        calls._end(ctx, ctx.started, end, None)
    stamp = time.perf_counter() - t
    folded = []
    recorder.emit = folded.append
    t = time.perf_counter()
    recorder.flush(end, final=True)
    fold = time.perf_counter() - t
    assert sum(w.succeeded for w in folded) == n
    return {"stamp_ns": round(stamp / n * 1e9, 1), "fold_ns": round(fold / n * 1e9, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trial", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="shorter trials (2 s instead of 5 s)")
    ap.add_argument("--out", default="bench-results/bench_core.json")
    args = ap.parse_args()
    if args.trial:
        print(json.dumps(trial(json.loads(args.trial))))
        return
    duration = 2.0 if args.quick else 5.0
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "trials": []}

    print(f"max sustained no-op rate, one process ({duration:g} s per trial, < 1% shortfall)")
    best: dict[str, dict] = {}
    for target in ("noop", "named-noop-10", "async-noop"):
        for rate in (50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 500_000):
            r = run_trial({"target": target, "rate": rate, "duration": duration})
            results["trials"].append(r)
            ok = r["shortfall"] < 0.01 and r["balanced"]
            print(
                f"  {target:10} {rate:>8}/s  achieved {r['achieved_rps']:>10.0f}/s  shortfall {r['shortfall']:6.2%}"
                f"  lag p99 {r['lag_ms']['p99']:7.3f} ms  cpu {r['cpu_us_per_slot']:5.2f} us/slot"
                f"  {'ok' if ok else 'SHORT'}"
            )
            if not ok:
                break
            best[target] = r
    results["max_sustained_rps"] = {k: v["rate"] for k, v in best.items()}

    print("schedule lag at 10k/s (noop)")
    lag = {}
    for spin in (0.0, 0.002):
        r = run_trial({"target": "noop", "rate": 10_000, "duration": duration, "spin": spin})
        results["trials"].append(r)
        lag[f"spin_{spin * 1000:g}ms"] = {**r["lag_ms"], "cpu_percent": round(100 * r["cpu_s"] / r["wall_s"], 1)}
        print(
            f"  spin {spin * 1000:g} ms: p50 {r['lag_ms']['p50']:.3f} ms  p99 {r['lag_ms']['p99']:.3f} ms  "
            f"max {r['lag_ms']['max']:.3f} ms  cpu {100 * r['cpu_s'] / r['wall_s']:.0f}% of a core"
        )
    results["lag_at_10k"] = lag

    acc = accounting_cost()
    r = run_trial({"target": "noop", "rate": 100_000, "duration": duration})
    acc["executor_cpu_us_per_slot_at_100k"] = r["cpu_us_per_slot"]
    results["accounting"] = acc
    print(
        f"accounting: stamp {acc['stamp_ns']} ns + fold into 3 histograms {acc['fold_ns']} ns per call; "
        f"whole executor {acc['executor_cpu_us_per_slot_at_100k']} us CPU per no-op slot at 100k/s"
    )
    print("names and scenarios at 100k calls/s, one process (executor CPU per slot)")
    names: dict[str, dict] = {}
    for label, spec in (
        ("no-op", {"target": "noop"}),
        ("10 names", {"target": "named-noop-10"}),
        ("1,000 names", {"target": "named-noop-1000"}),
        ("4 scenarios x 25k/s", {"target": "noop", "scenarios": 4}),
    ):
        r = run_trial({**spec, "rate": 100_000, "duration": duration})
        results["trials"].append(r)
        names[label] = {k: r[k] for k in ("cpu_us_per_slot", "achieved_rps", "shortfall", "scheduled", "balanced")}
        names[label]["lag_p99_ms"] = r["lag_ms"]["p99"]
    base = names["no-op"]["cpu_us_per_slot"]
    for label, r in names.items():
        r["cpu_vs_noop"] = round(r["cpu_us_per_slot"] / base - 1, 4) if base else None
        print(
            f"  {label:20} {r['cpu_us_per_slot']:5.2f} us/slot ({r['cpu_vs_noop']:+.1%} vs no-op)"
            f"  achieved {r['achieved_rps']:>9.0f}/s  lag p99 {r['lag_p99_ms']:.3f} ms"
        )
    results["names_and_scenarios_at_100k"] = names
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
