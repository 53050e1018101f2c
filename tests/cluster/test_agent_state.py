"""The agent's state machine, driven by hand: frames in, actions out, no sockets, no clock."""

import math

import pytest

from pusher_farm.cluster.agent.agent_actions import Change, Exit, Halt, Launch, Lease, Reconnect, Replan, Send
from pusher_farm.cluster.agent.agent_state import AgentMachine
from pusher_farm.cluster.protocol.messages import encode
from pusher_farm.cluster.protocol.plan import AgentPlan
from pusher_farm.cluster.protocol.records import Done
from pusher_farm.cluster.timing import AgentTiming
from pusher_farm.core.config import Config
from pusher_farm.core.load import Closed, Open
from pusher_farm.core.schedule import Constant
from pusher_farm.core.shard import Shard
from pusher_farm.errors import MissingTarget


def noop(ctx):
    return None


def resolve(name, params):
    if name != "noop":
        raise MissingTarget(f"cannot import {name}")
    return noop


def machine(**kw):
    m = AgentMachine(name="a", host="h", pid=1, capacity=1.0, cpus=2, resolve=resolve, package="0.2.0", **kw)
    m.hello(0.0)
    return m


def welcome(m, now=0.1, heartbeat=0.5, lease=2.0):
    frame = encode("welcome", agent="a/x", package="0.2.0", heartbeat=heartbeat, lease=lease, seen=0.0)
    return m.on_frame(frame, now)


def sends(actions, type_=None):
    return [a for a in actions if isinstance(a, Send) and (type_ is None or a.type == type_)]


SCENARIOS = (
    Config(name="browse", target="noop", load=Open(Constant(100, 10))),
    Config(name="users", target="noop", load=Closed(Constant(4, 10))),
)


def plan_wire(**over):
    plan = AgentPlan("r1", start_at=5.0, offset=0.0, index=0, weights=(1.0, 1.0), scenarios=SCENARIOS, firsts=(0, 0))
    return {**plan.to_wire(), **over}


def prepare(run="r1", *targets):
    return encode("prepare", run=run, scenarios=[[t, {}] for t in (targets or ("noop", "noop"))], seen=0.0)


def done(windows, stopped_early=False, **kw):
    return Done("r1", windows, stopped_early, **kw)


def started(m, now=0.3):
    m.on_frame(prepare(), now)
    return m.on_frame(encode("start", run="r1", plan=plan_wire(), seen=0.0), now)


def test_ping_is_answered_and_the_welcome_sets_heartbeat_and_lease():
    m = machine()
    pong = sends(m.on_frame(encode("ping", id=3, t0=1.0), 2.0), "pong")[0]
    assert pong.fields == {"id": 3, "t0": 1.0, "t1": 2.0, "t2": 2.0}
    welcome(m, heartbeat=0.25, lease=1.5)
    assert (m.heartbeat, m.lease) == (0.25, 1.5)
    beats = [a for t in (0.2, 0.36, 0.5, 0.62) for a in sends(m.on_tick(t), "heartbeat")]
    assert len(beats) == 2  # at 0.36 and 0.62: every 0.25 s from the welcome, not the old 1 s


def test_prepare_resolves_the_target_here_or_refuses_with_its_kind():
    m = machine()
    welcome(m)
    assert sends(m.on_frame(prepare("r1"), 0.2), "ready")
    refuse = sends(m.on_frame(prepare("r2", "noop", "x:y"), 0.2), "refuse")[0]  # its second scenario's
    assert refuse.fields["kind"] == "missing target" and "cannot import x:y" in refuse.fields["error"]


def test_start_launches_and_the_lease_runs_from_when_the_coordinator_last_heard_us():
    m = machine()
    welcome(m, lease=2.0)
    actions = started(m)
    assert [type(a) for a in actions if not isinstance(a, (Send,))][-2:] == [Launch, Lease]
    lease = [a for a in m.on_frame(encode("heartbeat", seen=0.5), 3.0) if isinstance(a, Lease)]
    assert lease[0].until == 4.5  # heard 0.5 s ago: the load may go on 2 s after that
    # A coordinator that stopped hearing us (a one-way loss) says so: the lease does not grow.
    assert not [a for a in m.on_frame(encode("heartbeat", seen=2.5), 4.0) if isinstance(a, Lease) and a.until > 4.5]
    # A message without "seen" (from a lost agent's point of view) renews nothing.
    assert not [a for a in m.on_frame(encode("heartbeat"), 4.2) if isinstance(a, Lease)]
    assert any(isinstance(a, Halt) for a in m.on_tick(4.6))


@pytest.mark.parametrize(
    "bad",
    [
        {"weights": [1.0, math.inf]},
        {"weights": [1.0, -1.0]},
        {"weights": [1.0]},  # index 0 fine, but then index 1 below...
        {"index": 5},
        {"firsts": [-1, 0]},
        {"firsts": [0]},  # not one per scenario
        {"start_at": math.nan},
        {"scenarios": [{"overtime": -1, "target": "noop", "load": {"kind": "open", "profile": [[1.0, 1.0, 1.0]]}}]},
        {"scenarios": [{"target": "noop", "name": "a"}, {"target": "noop", "name": "b"}]},  # no load
        {"scenarios": [SCENARIOS[0].to_wire()]},  # not the targets it prepared
        {"credits": [1, -1]},
    ],
)
def test_a_plan_that_is_not_valid_is_refused_not_run(bad):
    if bad == {"weights": [1.0]}:
        bad = {"weights": [1.0], "index": 1}
    m = machine()
    welcome(m)
    m.on_frame(prepare(), 0.2)
    actions = m.on_frame(encode("start", run="r1", plan=plan_wire(**bad)), 0.3)
    assert not any(isinstance(a, Launch) for a in actions)
    refuse = sends(actions, "refuse")[0]
    assert "bad plan" in refuse.fields["error"] and m.current is None


def test_epochs_stops_and_aborts_reach_the_current_run_only():
    m = machine()
    welcome(m)
    started(m)

    def epoch(run="r1", firsts=(40, 0), index=0, **kw):
        frame = encode("epoch", run=run, at_s=0.4, weights=[1.0], index=index, firsts=list(firsts), **kw)
        return m.on_frame(frame, 1.0)

    replan = [a for a in epoch() if isinstance(a, Replan)]
    assert replan == [Replan("r1", 0.4, Shard(0, (1.0,)), (40, 0))]
    assert epoch(run="other") == []
    for bad in (epoch(index=3), epoch(firsts=(40,)), epoch(changes=[{"sc": 5, "overtime": 3}]),
                epoch(changes=[{"sc": 0, "load": {"kind": "open", "profile": []}}])):  # fmt: skip
        assert not any(isinstance(a, Replan) for a in bad)
    assert m.bad_frames == 4
    # a runtime change: the users scenario's new model (the same up to the change) and a cap
    users = Closed(Constant(4, 10).then(0.4, 9))
    change = {"sc": 1, "load": users.to_wire(), "overtime": 3}
    changed = [a for a in epoch(changes=[change]) if isinstance(a, Replan)]
    assert changed[0].changes == (Change(1, users, 3),)
    one = [a for a in m.on_frame(encode("stop", run="r1", abort=False, at_s=0.7, sc=1), 1.05) if isinstance(a, Halt)]
    assert one == [Halt("r1", abort=False, at_s=0.7, scenario=1)] and not m.halted  # one scenario stops, not the run
    halt = [a for a in m.on_frame(encode("stop", run="r1", abort=False, at_s=0.77), 1.1) if isinstance(a, Halt)]
    assert halt == [Halt("r1", abort=False, at_s=0.77)] and m.halted


def test_silence_halts_the_load_at_the_lease_then_reconnects():
    m = machine()
    welcome(m, now=0.1, lease=2.0)
    started(m, now=0.3)
    assert not any(isinstance(a, Halt) for a in m.on_tick(2.2))
    actions = m.on_tick(2.4)  # 2 s after the start said "heard you just now"
    assert any(isinstance(a, Halt) for a in actions) and any(isinstance(a, Reconnect) for a in actions)
    assert sends(actions, "hello") and not m.welcomed


def test_windows_are_kept_until_acked_and_sent_again_after_a_welcome():
    m = machine()
    welcome(m)
    started(m)
    for seq in range(3):
        m.on_window("r1", seq, {"i": seq})
    m.on_frame(encode("ack", run="r1", seq=1), 1.0)
    m.on_done(done(3), 1.5)
    again = welcome(m, now=2.0)
    assert [(s.type, s.fields.get("seq")) for s in sends(again)] == [("window", 2), ("done", None)]


def test_an_once_agent_leaves_when_its_run_is_in_and_acknowledged():
    m = machine(once=True)
    welcome(m)
    started(m)
    m.on_window("r1", 0, {"i": 0})
    m.on_done(done(1), 1.0)
    assert not any(isinstance(a, Exit) for a in m.on_tick(1.1))  # window 0 not acknowledged yet
    m.on_frame(encode("ack", run="r1", seq=0), 1.2)
    actions = m.on_tick(1.3)
    assert sends(actions, "bye") and [a.status for a in actions if isinstance(a, Exit)] == [0]


def test_an_once_agent_nobody_ever_answers_gives_up():
    m = AgentMachine(
        name="a", host="h", pid=1, capacity=1.0, cpus=1, resolve=resolve, once=True,
        timing=AgentTiming(connect_timeout=10.0),
    )  # fmt: skip
    m.hello(0.0)
    exits = [a for t in range(1, 16) for a in m.on_tick(float(t)) if isinstance(a, Exit)]
    assert len(exits) == 1 and exits[0].status == 0


def test_a_user_stop_halts_the_run_reports_it_then_says_bye():
    m = machine()
    welcome(m)
    started(m)
    assert [a for a in m.stop() if isinstance(a, Halt)] == [Halt("r1", abort=False)]
    actions = m.on_done(done(0, True), 2.0)
    assert [s.type for s in sends(actions)] == ["done", "bye"]
    assert [a.status for a in actions if isinstance(a, Exit)] == [0]


def test_long_errors_are_cut_so_they_still_fit_a_message():
    def verbose(name, params):
        raise MissingTarget("x" * 100_000)

    m = AgentMachine(name="a", host="h", pid=1, capacity=1.0, cpus=1, resolve=verbose)
    refuse = sends(m.on_frame(prepare("r1", "t:t"), 0.1), "refuse")[0]
    encode(refuse.type, **refuse.fields)  # would raise if the error were over the limit
    said = sends(m.on_done(done(0, True, error="y" * 100_000), 0.2), "done")[0]
    encode(said.type, **said.fields)
