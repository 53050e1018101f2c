"""The Python API in a few lines: run it with `python examples/quickstart.py`."""

import asyncio

from targets import checkout  # examples/targets.py: importable, so it can run on other processes

import pusher_farm as pf


async def ping(ctx: pf.Context) -> None:
    await asyncio.sleep(0.001)


class Printer:
    """A Gossiper: counts the events of every slot on its own thread."""

    def __init__(self) -> None:
        self.after = 0

    def listen(self, worker: pf.Worker, gossips: pf.GossipStream) -> None:
        for gossip in gossips:
            if gossip.when is pf.When.AFTER_TARGET:
                self.after += 1

    def stop(self) -> None:
        print(f"listener heard {self.after} calls end")


# One worker, 100 calls a second for 2 seconds, at most 50 in flight.
report = pf.work(100, 2, ping, pf.with_overtime(50), pf.with_gossips(Printer()))
print(report.counts, f"p99 latency {report.latency.percentile(99) / 1000:.2f} ms")

# A ramp: 0 to 200/s over 1 s, hold 1 s.
worker = pf.hire("ramp", ping, pf.with_profile(pf.parse_stages("1s:0-200,1s:200")))
print(worker.work_sync().counts)

# Three identical workers at 50/s each (150/s in all), one process each, merged into one report.
# A target for other processes must be importable by module path (not a lambda, not __main__).
report = pf.force(50, 1, checkout)(3)
print(report.counts, report.errors, [a.counts.scheduled for a in report.agents])
