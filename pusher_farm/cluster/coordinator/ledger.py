"""One agent's report windows as the coordinator receives them: each counted once, acked.

Agents number their windows 0, 1, 2, ... per run and keep every window until it is
acknowledged, re-sending the rest after a reconnect; so a window may arrive twice, late or out
of order, and the ledger accepts each sequence number once. Acks are cumulative (every window
up to ``seq``) and go every ``ACK_EVERY`` windows, at once for a re-sent window and once the
agent says done: one ack per window was the coordinator's largest cost at 1,000 agents.
"""

from __future__ import annotations

__all__ = ["ACK_EVERY", "Ledger"]

#: windows per cumulative ack while a run goes on (an agent keeps at most about this many)
ACK_EVERY = 8


class Ledger:
    def __init__(self) -> None:
        self.seqs: set[int] = set()
        #: every window up to this seq is in; the last ack said up to ``acked``
        self.contiguous = -1
        self.acked = -1
        #: how many windows the agent said it sent (its ``done``); None before
        self.expected: int | None = None

    def receive(self, seq: int) -> bool:
        """Note window ``seq``; False if it was already in (a re-send)."""
        if seq in self.seqs:
            return False
        self.seqs.add(seq)
        while self.contiguous + 1 in self.seqs:
            self.contiguous += 1
        return True

    def ack(self, *, force: bool) -> int | None:
        """The seq to acknowledge now (every ``ACK_EVERY`` windows, or at once if ``force``,
        even when it says nothing new: the last ack may have been lost with a connection)."""
        if self.contiguous < 0:
            return None
        if not force and self.contiguous - self.acked < ACK_EVERY:
            return None
        self.acked = self.contiguous
        return self.contiguous

    @property
    def complete(self) -> bool:
        """The agent said done and every window it counted is in."""
        return self.expected is not None and self.contiguous + 1 >= self.expected
