"""The coordinator's state machine, driven by hand: no sockets, no sleeping."""

import numpy as np
import pytest

from pusher_farm.cluster.coordinator.actions import Accept, Finish, Phase, Send
from pusher_farm.cluster.coordinator.ledger import ACK_EVERY
from pusher_farm.cluster.coordinator.membership import AgentState
from pusher_farm.cluster.coordinator.router import CoordinatorState
from pusher_farm.cluster.protocol.messages import decode, encode
from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.cluster.timing import Timing
from pusher_farm.core.config import Config
from pusher_farm.core.load import Open
from pusher_farm.core.run import Run
from pusher_farm.core.schedule import Constant
from pusher_farm.core.window import Window

TIMING = Timing(heartbeat=1.0, agent_timeout=3.0, wait_timeout=10.0, sync_pings=3, start_lead=0.5, end_grace=1.0)


def msg(t, **fields):
    """A message as the state machine gets it: encoded, then decoded and checked."""
    return decode(encode(t, **fields))


def hello(name, capacity=1.0):
    return msg("hello", name=name, host="h", pid=1, capacity=capacity, cpus=2, package="0.2.0")


def wire(index, n=1):
    w = Window(index, float(index), 1.0, started=n, succeeded=n, scenario="default")
    w.latency.record_many(np.full(n, 1000))
    w.service.record_many(np.full(n, 1000))
    w.lag.record_many(np.zeros(n, dtype=np.int64))
    return w.to_wire()


def sends(actions, type_=None):
    return [a for a in actions if isinstance(a, Send) and (type_ is None or a.type == type_)]


def spec(rate=100.0, duration=2.0, **settings):
    return Run.of([Config(target="noop", load=Open(Constant(rate, duration)), overtime=10, timeout=1.0, **settings)])


def sync(state, agent, now, offset=0.0, rtt=0.002, capacity=1.0):
    """Answer every ping the state sends to ``agent`` until it stops pinging."""
    actions = state.on_message(agent, hello(agent, capacity), now)
    out = list(actions)
    while True:
        pings = [a for a in sends(actions, "ping") if a.agent == agent]
        if not pings:
            return out
        p = pings[0].fields
        now += rtt
        t1 = p["t0"] + rtt / 2 + offset
        actions = state.on_message(agent, msg("pong", id=p["id"], t0=p["t0"], t1=t1, t2=t1), now)
        out += actions


def started(state, agents=("a", "b"), now=0.0):
    for name in agents:
        actions = sync(state, name, now)
    prepares = sends(actions, "prepare")
    assert {p.agent for p in prepares} == set(agents)
    for name in agents:
        actions = state.on_message(name, msg("ready", run=state.run_id), now + 0.1)
    return actions


def test_waits_syncs_prepares_and_starts_with_equal_shares():
    state = CoordinatorState(spec(), expect=2, timing=TIMING, now=0.0)
    actions = sync(state, "a", 0.0, offset=0.25)
    assert state.phase is Phase.WAITING and not sends(actions, "prepare")
    assert state.agents["a"].offset == pytest.approx(0.25)
    actions = started(state)
    starts = sends(actions, "start")
    assert len(starts) == 2 and state.phase is Phase.RUNNING
    plans = [AgentPlan.from_wire(s.fields["run"], s.fields["plan"]) for s in starts]
    assert [p.index for p in plans] == [0, 1]
    assert all(p.weights == (1.0, 1.0) for p in plans)
    assert plans[0].start_at == pytest.approx(0.1 + 0.5 + 2 * 0.002)
    assert state.agents["a"].share == 0.5


def test_capacity_sets_the_weights_of_every_plan():
    state = CoordinatorState(spec(), expect=2, timing=TIMING)
    for name, capacity in (("a", 3.0), ("b", 1.0)):
        sync(state, name, 0.0, capacity=capacity)
    for name in ("a", "b"):
        actions = state.on_message(name, msg("ready", run=state.run_id), 0.1)
    plans = {s.agent: AgentPlan.from_wire(state.run_id, s.fields["plan"]) for s in sends(actions, "start")}
    assert plans["a"].weights == plans["b"].weights == (3.0, 1.0)
    assert (plans["a"].index, plans["b"].index) == (0, 1)
    assert state.agents["a"].share == 0.75 and state.agents["b"].share == 0.25


def test_windows_are_acknowledged_cumulatively_and_deduplicated():
    state = CoordinatorState(spec(), expect=2, timing=TIMING)
    started(state)

    def window(seq, t):
        return state.on_message("a", msg("window", run=state.run_id, seq=seq, w=wire(seq)), t)

    def acks(actions):
        return [a.fields["seq"] for a in actions if isinstance(a, Send) and a.type == "ack"]

    first = window(0, 1.0)
    assert [type(a) for a in first] == [Accept] and not acks(first)  # acks go every ACK_EVERY windows
    again = window(0, 1.1)
    assert acks(again) == [0] and not any(isinstance(a, Accept) for a in again)  # a re-send: ack at once
    assert acks(window(0, 1.2)) == [0]  # again, though already acked: that ack may have been lost
    # A gap (seq 2 missing): the ack covers only the unbroken prefix.
    sent = [acks(window(seq, 2.0 + seq)) for seq in [1, *range(3, ACK_EVERY + 3)]]
    assert sent == [[]] * (ACK_EVERY + 1)
    assert acks(window(2, 20.0)) == [ACK_EVERY + 2]
    # A window of an older run is acknowledged so the agent can forget it.
    assert acks(state.on_message("a", msg("window", run="old", seq=5, w={}), 20.5)) == [5]
    # done: whatever is in is acknowledged at once.
    window(ACK_EVERY + 3, 21.0)
    done = state.on_message("a", msg("done", run=state.run_id, windows=ACK_EVERY + 4, stopped_early=False), 22.0)
    assert acks(done) == [ACK_EVERY + 3]


def test_done_from_all_finishes_ok():
    state = CoordinatorState(spec(), expect=2, timing=TIMING)
    started(state)
    for agent in ("a", "b"):
        state.on_message(agent, msg("window", run=state.run_id, seq=0, w=wire(0)), 2.0)
        actions = state.on_message(agent, msg("done", run=state.run_id, windows=1, stopped_early=False), 2.5)
    finish = [a for a in actions if isinstance(a, Finish)]
    assert finish and finish[0].ok and finish[0].status == 0


def test_done_waits_for_missing_windows():
    state = CoordinatorState(spec(), expect=1, timing=TIMING)
    started(state, ("a",))
    actions = state.on_message("a", msg("done", run=state.run_id, windows=2, stopped_early=False), 2.5)
    assert not [a for a in actions if isinstance(a, Finish)]
    actions = state.on_message("a", msg("window", run=state.run_id, seq=1, w=wire(1)), 2.6)
    assert not [a for a in actions if isinstance(a, Finish)] and state.agents["a"].state is AgentState.RUNNING
    actions = state.on_message("a", msg("window", run=state.run_id, seq=0, w=wire(0)), 2.7)
    assert state.agents["a"].state is AgentState.DONE
    finish = [a for a in actions if isinstance(a, Finish)]
    assert len(finish) == 1 and finish[0].ok and finish[0].status == 0


def test_refusal_names_the_agent_and_fails_with_status_2():
    state = CoordinatorState(spec(), expect=2, timing=TIMING)
    sync(state, "a", 0.0)
    sync(state, "b", 0.0)
    refuse = msg("refuse", run=state.run_id, error="cannot import module 'x'", kind="missing target")
    actions = state.on_message("b", refuse, 0.2)
    finish = next(a for a in actions if isinstance(a, Finish))
    assert finish.status == 2 and "agent 'b'" in finish.reason and "cannot import module" in finish.reason
    assert finish.kind == "missing target"
    assert {s.agent for s in sends(actions, "stop")} == {"a", "b"}


def test_too_few_agents_within_the_wait_fails_clearly():
    state = CoordinatorState(spec(), expect=2, timing=TIMING, now=0.0)
    sync(state, "a", 0.0)
    state.on_message("a", msg("heartbeat"), 10.0)
    actions = state.on_tick(10.5)
    finish = next(a for a in actions if isinstance(a, Finish))
    assert finish.status == 2 and "only 1 of 2 agents" in finish.reason


def test_silent_agent_is_lost_and_heartbeats_go_out():
    state = CoordinatorState(spec(duration=60), expect=2, timing=TIMING)
    started(state)
    state.on_message("a", msg("heartbeat"), 3.0)
    actions = state.on_tick(3.5)
    assert {s.agent for s in sends(actions, "heartbeat")} == {"a", "b"}
    assert state.agents["b"].state is AgentState.LOST and state.agents["a"].state is AgentState.RUNNING
    assert state.agents["b"].lost_at == 3.5


def test_agents_beyond_the_expected_are_spare():
    state = CoordinatorState(spec(), expect=1, timing=TIMING)
    sync(state, "a", 0.0)
    actions = state.on_message("z", hello("z"), 0.1)
    assert state.agents["z"].state is AgentState.SPARE and not sends(actions, "ping")


def test_offset_comes_from_the_fastest_ping():
    state = CoordinatorState(spec(), expect=1, timing=TIMING)
    state.on_message("a", hello("a"), 0.0)
    state.on_message("a", msg("pong", id=1, t0=0.0, t1=5.030, t2=5.030), 0.050)  # slow: rtt 50 ms
    state.on_message("a", msg("pong", id=2, t0=1.0, t1=6.001, t2=6.001), 1.002)  # fast
    assert state.agents["a"].offset == pytest.approx(5.0, abs=1e-9)
    assert state.agents["a"].rtt == pytest.approx(0.002)


def test_an_agent_joining_mid_run_gets_a_share_from_the_next_epoch():
    state = CoordinatorState(spec(duration=60), expect=1, timing=TIMING)
    started(state, ("a",))
    actions = sync(state, "late", 5.0)
    prepares = sends(actions, "prepare")
    assert [p.agent for p in prepares] == ["late"]
    actions = state.on_message("late", msg("ready", run=state.run_id), 5.1)
    start = sends(actions, "start")[0]
    epoch = sends(actions, "epoch")[0]
    plan = AgentPlan.from_wire(state.run_id, start.fields["plan"])
    assert epoch.agent == "a" and epoch.fields["index"] == 0 and epoch.fields["weights"] == [1.0, 1.0]
    assert plan.index == 1 and plan.weights == (1.0, 1.0) and plan.firsts == tuple(epoch.fields["firsts"])
    assert plan.from_s == epoch.fields["at_s"]
    # announced ahead of now, on the run's own schedule (100/s)
    assert plan.firsts[0] == pytest.approx((5.1 + 0.5 - state.start_at) * 100, abs=2)
    assert [e.reason for e in state.planner.epochs] == ["start", "late joined"]


def test_no_late_join_keeps_newcomers_spare():
    state = CoordinatorState(spec(duration=60, late_join=False), expect=1, timing=TIMING)
    started(state, ("a",))
    state.on_message("late", hello("late"), 5.0)
    assert state.agents["late"].state is AgentState.SPARE


def test_losing_hundreds_of_agents_at_the_deadline_does_not_recurse():
    state = CoordinatorState(spec(duration=2.0), expect=600, timing=TIMING)
    names = [f"a{i}" for i in range(600)]
    for name in names:
        sync(state, name, 0.0)
    for name in names:
        state.on_message(name, msg("ready", run=state.run_id), 0.1)
    for t in (1.0, 2.0, 3.0):  # they keep talking, but never say done
        for name in names:
            state.on_message(name, msg("heartbeat"), t)
    actions = state.on_tick(state.intake.deadline + 0.1)
    finish = [a for a in actions if isinstance(a, Finish)]
    assert len(finish) == 1 and finish[0].status == 1


def test_a_late_agent_that_refuses_its_plan_is_lost_and_its_share_moves_on():
    state = CoordinatorState(spec(duration=60), expect=1, timing=TIMING)
    started(state, ("a",))
    sync(state, "late", 5.0)
    state.on_message("late", msg("ready", run=state.run_id), 5.1)
    assert state.agents["late"].shard is not None
    actions = state.on_message("late", msg("refuse", run=state.run_id, error="bad plan: unknown setting"), 5.2)
    assert state.agents["late"].state is AgentState.LOST
    epochs = sends(actions, "epoch")
    assert [e.agent for e in epochs] == ["a"] and epochs[0].fields["weights"] == [1.0]
    assert [e.names for e in state.planner.epochs] == [("a",), ("a", "late"), ("a",)]


def test_no_agent_joins_a_run_that_was_stopped():
    state = CoordinatorState(spec(duration=60), expect=1, timing=TIMING)
    started(state, ("a",))
    state.stop(3.0)
    state.on_message("late", hello("late"), 3.1)
    assert state.agents["late"].state is AgentState.SPARE


def test_messages_to_agents_say_how_long_ago_they_were_heard_but_not_to_lost_ones():
    state = CoordinatorState(spec(duration=60), expect=2, timing=TIMING)
    started(state)
    state.on_message("a", msg("heartbeat"), 3.0)
    actions = state.on_tick(3.5)
    assert state.agents["b"].state is AgentState.LOST  # b was silent past the timeout
    to_a = [s.fields for s in sends(actions) if s.agent == "a"]
    assert to_a and all(f["seen"] == pytest.approx(0.5) for f in to_a)
    assert all("seen" not in s.fields for s in sends(actions) if s.agent == "b")


def test_a_lost_agent_is_told_to_stop_where_its_share_moved():
    state = CoordinatorState(spec(duration=60), expect=2, timing=TIMING)
    started(state)
    state.on_message("a", msg("heartbeat"), 3.0)
    actions = state.on_tick(3.5)
    to_b = [s for s in sends(actions, "stop") if s.agent == "b"]
    epoch = sends(actions, "epoch")[0]
    assert to_b and to_b[0].fields["at_s"] == epoch.fields["at_s"] and "seen" not in to_b[0].fields


def test_a_peer_with_an_absurd_identity_is_dropped():
    state = CoordinatorState(spec(), expect=1, timing=TIMING)
    frame = encode("hello", name="a", host="h", pid=1, capacity=1.0, cpus=1, package="0.2.0")
    assert not sends(state.on_frame("x" * 5000, frame, 0.0)) and state.bad_frames == 1
