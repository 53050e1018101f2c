"""The pacer: when to launch the next slot. Pure: (due, now) in, a wait out; no clock.

Each wake-up launches the slot it woke for and every slot due within ``batch`` seconds of it
(at most ``most_early`` of them), up to that early: at a few thousand slots per second the
wake-ups themselves were most of a generator's CPU (a timer, an epoll and a loop iteration,
~40 µs each on a 2-core VM). Event-loop timers tick in milliseconds and uvloop rounds
shorter sleeps to zero (which would spin), so a sleep is at least one ``tick``; with ``spin``
the last stretch before a slot is busy-waited instead (yield, look at the clock again), for
sub-millisecond start times at the cost of a core. ``spin`` turns batching off.
"""

from __future__ import annotations

import math

__all__ = ["BATCH_MOST", "LAUNCHES_BEFORE_YIELD", "LONGEST_SLEEP", "TIMER_TICK", "Pacer"]

#: a pacer sleeps at most this long at a time, so a new plan, a lapsed lease or the run's cut
#: is noticed soon even at low rates
LONGEST_SLEEP = 0.05
#: launches in a row (far behind schedule) before calls, I/O and folding get to run
LAUNCHES_BEFORE_YIELD = 512

#: the event loop's timer resolution
TIMER_TICK = 0.001
#: most slots one wake-up launches early: batching pays at a few thousand slots/s; at high rates
#: the timer tick already batches, and a large early burst would only fill overtime at once
BATCH_MOST = 16


class Pacer:
    """Decides, slot after slot in due order, whether to launch now or wait (and how long)."""

    def __init__(self, *, batch: float, spin: float, tick: float = TIMER_TICK, most_early: int = BATCH_MOST) -> None:
        self.spin = spin
        self.tick = tick
        self.most_early = most_early
        self.ahead = 0.0 if spin else batch
        #: slots due up to here go with the current wake-up
        self.horizon = -math.inf
        #: slots the current wake-up launched before their time
        self.early = 0

    def wait(self, due: float, now: float) -> float | None:
        """None: launch the slot due at ``due`` now. Else the seconds to wait before asking
        again: 0 means yield once and look again (busy-waiting the last ``spin`` seconds)."""
        if due > self.horizon or self.early >= self.most_early:
            if now < due:
                remaining = due - now
                return 0.0 if remaining <= self.spin else max(remaining - self.spin, self.tick)
            # This slot is a wake-up: the slots due within the batch go with it.
            self.horizon = now + self.ahead
            self.early = 0
        elif due > now:
            self.early += 1
        return None
