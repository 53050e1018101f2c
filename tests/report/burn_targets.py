"""A CPU-bound target for the generator-verdict tests (importable by agent processes)."""

import time


def burn(ctx):
    """Keeps the CPU busy for 20 ms (holding the GIL most of it): at a few hundred calls a
    second one process cannot keep up."""
    end = time.perf_counter() + 0.02
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n
