#!/usr/bin/env python
"""Work-item benchmark: how many items a second does a drain of a no-op target get through?

Prints a table and writes JSON (default bench-results/bench_work.json):

* in one process (``Worker`` with ``with_items``, no farm): a list of items and a JSONL file,
  ``parallel`` 64, an inline no-op target;
* through the farm (``farm run noop --feed FILE --drain --parallel 64N -p N``: 64 lanes per process,
  ``--parallel`` being the whole farm's) with 1 and 2 agent
  processes: the coordinator reads the file and deals the items under credit, the agents call
  and hand the records back. Items per second = items / the run's duration (first call to the
  last one done).

Each figure is the median of ``--rounds`` runs (fresh processes for the farm runs).
Usage: python scripts/bench_work.py [--items N] [--rounds R] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def in_process(items: int, path: Path | None) -> float:
    import pusher_farm as pf

    feed = str(path) if path is not None else [{"id": i} for i in range(items)]
    w = pf.hire("bench", pf.inline(lambda ctx: None), pf.with_items(feed, parallel=64))
    started = time.perf_counter()
    report = w.work_sync()
    elapsed = time.perf_counter() - started
    assert report.items["by_status"] == {"success": items}, report.items
    return items / elapsed


def on_farm(items: int, path: Path, processes: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pusher_farm", "run", "noop", "--feed", str(path), "--drain", "--parallel",
             str(64 * processes),
             "-p", str(processes), "--json", str(out), "-q"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        d = json.loads(out.read_text())
    assert d["items"]["by_status"] == {"success": items}, d["items"]
    return items / d["duration_s"], items / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="bench-results/bench_work.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.jsonl"
        path.write_text("".join(json.dumps({"id": i, "body": {"n": i}}) + "\n" for i in range(args.items)))
        rows: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            rows.setdefault("1 process, list", []).append(in_process(args.items, None))
            rows.setdefault("1 process, JSONL", []).append(in_process(args.items, path))
            for n in (1, 2):
                run_rate, wall_rate = on_farm(args.items, path, n)
                rows.setdefault(f"farm -p {n}", []).append(run_rate)
                rows.setdefault(f"farm -p {n} (wall, with start-up)", []).append(wall_rate)
    results = {name: round(statistics.median(v)) for name, v in rows.items()}
    print(f"{'drain of a no-op target, ' + str(args.items) + ' items':44}{'items/s':>12}")
    for name, rate in results.items():
        print(f"{name:44}{rate:>12,}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"items": args.items, "rounds": args.rounds, "items_per_s": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
