"""The coordinator's intake: windows in (each once), acks out, the done records, and when the
run is over.

A window is accepted once per (agent, seq) and only if it is valid and within the run (a window
a peer made up is counted as rejected, never merged). An agent is complete once it said done and
every window it counted is in. The run's deadline is the schedule's end, plus the call timeout,
a window and ``end_grace``: whoever has not finished by then is lost; after a stop, sooner; after
an abort, ``abort_grace`` later at the latest.
"""

from __future__ import annotations

import math

from pusher_farm.cluster.coordinator.actions import Accept, Action, Log, Send
from pusher_farm.cluster.coordinator.membership import AgentRecord, AgentState
from pusher_farm.cluster.protocol.records import Done, WindowReport
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.run import Run

__all__ = ["Intake"]

#: windows beyond the run's last possible one, allowed for late results and rounding
_SPARE_WINDOWS = 8


class Intake:
    """See the module docstring."""

    def __init__(self, run_id: str, timing: Timing) -> None:
        self.run_id = run_id
        self.timing = timing
        #: what went wrong with windows agents sent (each named in the report)
        self.rejected: list[str] = []
        self.aborted = False
        self.abort_deadline: float | None = None
        self.deadline = math.inf
        self._last_window = 1 << 40

    def started(self, start_at: float, run: Run) -> None:
        """The run starts at ``start_at``: fix its deadline and the last window it can have."""
        window = run.settings.window
        longest = max(c.length() + (c.timeout or 0.0) for c in run)
        if math.isfinite(longest):
            self.deadline = start_at + longest + window + self.timing.end_grace
            self._last_window = math.ceil((longest + window + self.timing.end_grace) / window) + _SPARE_WINDOWS

    def stopping(self, now: float, run: Run, *, abort: bool) -> None:
        """A stopped run ends sooner than its schedule: the calls in flight and the last windows."""
        self.deadline = min(self.deadline, now + 1.0 + run.longest_call() + run.settings.window + self.timing.end_grace)
        if abort:
            self.aborted = True
            self.abort_deadline = now + self.timing.abort_grace

    def window(self, agent: AgentRecord, report: WindowReport, run: Run, now: float) -> list[Action]:
        """A window from ``agent``: accepted (once), or acknowledged and named when it is not valid."""
        seq = report.seq
        if report.run != self.run_id:  # an old run's window: the agent may forget it
            agent.last_sent = now
            return [Send(agent.id, "ack", {"run": report.run, "seq": seq})]
        if seq in agent.ledger.seqs:
            return self.ack(agent, force=True, now=now)  # a re-sent window we already have
        window, error = report.window, report.error
        if window is not None and window.index > self._last_window:
            error = f"window {window.index} is past the run's end"
        elif window is not None and not any(c.name == window.scenario for c in run):
            error = f"the run has no scenario {window.scenario[:64]!r}"
        if window is None or error:
            # Acknowledged, so the agent forgets it, and named in the report: never merged.
            agent.ledger.receive(seq)
            agent.rejected += 1
            self.rejected.append(f"{agent.label()} sent window {seq} that is not valid ({error}): it is not counted")
            return [Log("error", self.rejected[-1]), *self.ack(agent, force=True, now=now)]
        agent.ledger.receive(seq)
        agent.reported_until_s = max(agent.reported_until_s, window.start + window.length)
        return [Accept(agent.id, seq, window), *self.ack(agent, force=agent.ledger.expected is not None, now=now)]

    def beyond(self, seq: int) -> bool:
        """A sequence number no window of this run can have (a peer making them up)."""
        return seq > 4 * self._last_window

    def ack(self, agent: AgentRecord, *, force: bool, now: float) -> list[Action]:
        seq = agent.ledger.ack(force=force)
        if seq is None:
            return []
        agent.last_sent = now
        return [Send(agent.id, "ack", {"run": self.run_id, "seq": seq})]

    def done(self, agent: AgentRecord, done: Done, now: float) -> list[Action]:
        """``agent`` says its run ended after ``done.windows`` windows."""
        if done.run != self.run_id:
            return []
        agent.ledger.expected = done.windows
        agent.done = done
        return self.ack(agent, force=True, now=now)

    def verdict(self, used: list[AgentRecord], now: float) -> tuple[tuple[bool, str, int] | None, list[AgentRecord]]:
        """The run's end once nothing more is waited for: (ok, reason, exit status); else, past
        the deadline, the agents that have not finished (to lose; the lost ones that came back
        are no longer waited for)."""
        if all(self.settled(a) for a in used):
            lost = [a for a in used if a.state is AgentState.LOST]
            if self.aborted:
                return (False, "aborted: calls in flight were canceled", 1), []
            if lost:
                return (False, f"{len(lost)} of {len(used)} agents lost", 1), []
            return (True, "", 0), []
        if now <= self.deadline:
            return None, []
        for a in used:
            a.returned = False  # stop waiting for a lost agent's last windows
        return None, [a for a in used if a.state not in (AgentState.DONE, AgentState.LEFT, AgentState.LOST)]

    @staticmethod
    def settled(a: AgentRecord) -> bool:
        """Nothing more to wait for from ``a``: done, or lost and not back with windows to hand in."""
        if a.state in (AgentState.DONE, AgentState.LEFT):
            return True
        if a.state is not AgentState.LOST:
            return False
        return not a.returned or a.ledger.complete
