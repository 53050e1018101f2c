"""A histogram's encodings: the compact run farm windows carry on the wire, and the
``hdrhistogram`` package's (its standard V2 encoding, for reports and other HDR tools).

On the wire a histogram is its counts from the first to the last non-empty bucket (a latency
histogram's buckets are mostly one dense run), in the narrowest unsigned type that holds them,
byte-shuffled when wider than a byte (high bytes compress apart from low ones), zlib level 1,
with its exact sum, min, max and clamped count. Decoding is one decompress and one slice add
into the totals: at 1,000 agent-seconds per second, index and count pairs had cost a quarter of
the coordinator's CPU (see docs/architecture.md). Everything decoded is checked: it may come
from a peer.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from pusher_farm.core.buckets import HIGHEST_US, LAYOUT, LOWEST_US, SIGNIFICANT_FIGURES
from pusher_farm.core.stats import Histogram

__all__ = ["decode", "encode", "from_hdr", "to_hdr"]


def encode(h: Histogram) -> dict[str, Any]:
    """``h`` as the wire carries it (see the module docstring)."""
    offset, run = h.run()
    top = int(run.max()) if run.size else 0
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    packed = run.astype(f"<u{width}")
    if width > 1:
        packed = packed.view(np.uint8).reshape(-1, width).T  # byte j of every count together
    return {
        "z": zlib.compress(packed.tobytes(), 1),
        "o": offset,
        "k": int(run.size),
        "b": width,
        "n": h.total,
        "s": h.sum,
        "lo": h.min,
        "hi": h.max,
        "x": h.clamped,
    }


def decode(data: Any) -> Histogram:
    """The histogram ``encode`` made; ``ValueError`` for anything malformed or inconsistent."""
    if not isinstance(data, dict):
        raise ValueError("a histogram must be a map")
    offset, k, width = _whole(data, "o"), _whole(data, "k"), _whole(data, "b")
    if width not in (1, 2, 4, 8) or offset + k > LAYOUT.counts_len:
        raise ValueError("histogram encoding out of range")
    payload = data.get("z")
    if not isinstance(payload, bytes):
        raise ValueError("histogram payload must be bytes")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(payload, width * k + 1)
    except zlib.error:
        raise ValueError("histogram payload is not zlib data") from None
    if len(raw) != width * k or d.unconsumed_tail:
        raise ValueError("histogram payload has the wrong size")
    # Counts stay in their unsigned wire type: adding them to int64 counts upcasts anyway.
    if width == 1:
        run = np.frombuffer(raw, dtype=np.uint8)
    else:
        shuffled = np.frombuffer(raw, dtype=np.uint8).reshape(width, k)
        run = np.ascontiguousarray(shuffled.T).view(f"<u{width}").reshape(k)
        if width == 8:  # int64 += uint64 is not a safe cast; and counts must not wrap
            if k and int(run.max()) >= 1 << 62:
                raise ValueError("histogram counts out of range")
            run = run.astype(np.int64)
    return Histogram.of_run(
        offset, run, total=_whole(data, "n"), sum_=_whole(data, "s"), low=_whole(data, "lo"),
        high=_whole(data, "hi"), clamped=_whole(data, "x", 0),
    )  # fmt: skip


def to_hdr(h: Histogram) -> HdrHistogram:
    """An ``hdrh.histogram.HdrHistogram`` with the same counts (for ``encode()`` etc.)."""
    hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    nz, values = h.nonzero()
    for i, c in zip(nz.tolist(), values.tolist(), strict=True):
        hdr.counts[i] = c
    if nz.size:
        hdr.set_internal_tacking_values(int(nz[0]), int(nz[-1]), h.total)
    return hdr


def from_hdr(hdr: HdrHistogram) -> Histogram:
    """Counts from an HdrHistogram with the same layout; sum and extremes from its buckets."""
    if hdr.counts_len != LAYOUT.counts_len or hdr.unit_magnitude != LAYOUT.unit_magnitude:
        raise ValueError("HdrHistogram layout differs (need 1 us .. 1 h, 3 figures)")
    h = Histogram()
    h.counts[:] = np.ctypeslib.as_array(hdr.counts)[: LAYOUT.counts_len]
    h.total = int(h.counts.sum())
    nz = np.flatnonzero(h.counts)
    if nz.size:
        h.min = int(LAYOUT.lowest_values[nz[0]])
        h.max = int(LAYOUT.highest_values[nz[-1]])
        mids = (LAYOUT.lowest_values[nz] + LAYOUT.highest_values[nz]) // 2
        h.sum = int((mids * h.counts[nz]).sum())
    return h


def _whole(data: dict[str, Any], key: str, default: int | None = None) -> int:
    """``data[key]`` as a whole number from 0 to 2**62 (``ValueError`` otherwise)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        raise ValueError(f"histogram field {key!r} must be a whole number >= 0, got {value!r}")
    return value
