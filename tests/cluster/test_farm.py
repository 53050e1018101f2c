"""Farm behaviour on the simulator: the real coordinator and agent code (drivers, state machines,
protocol, executors) on the in-process transport and a virtual clock. No sockets, no sleeping:
each test runs a farm of 10-30 simulated seconds in well under a second."""

import math

import msgpack
import pytest
from sim import TIMING, SimFarm, run_of, spec

from pusher_farm.cluster.agent.agent_state import AgentMachine, AgentTiming, Exit
from pusher_farm.cluster.coordinator.router import Timing
from pusher_farm.cluster.protocol.messages import PROTOCOL_VERSION, decode, encode, refusal
from pusher_farm.core.config import Config
from pusher_farm.core.load import Open
from pusher_farm.core.schedule import Constant
from pusher_farm.core.thresholds import EXIT_THRESHOLDS
from pusher_farm.report import to_dict, warnings

HELLO = {"name": "evil", "host": "h", "pid": 1, "capacity": 1.0, "cpus": 1, "package": "0.2.0"}


def accounted(report):
    c = report.counts
    assert c.planned == c.scheduled + c.unfired
    assert c.scheduled == c.succeeded + c.failed + c.canceled
    for a in report.agents:
        assert a.counts.planned == a.counts.scheduled + a.counts.unfired
    assert sum(a.counts.planned for a in report.agents) == c.planned
    assert sum(a.counts.scheduled for a in report.agents) == c.scheduled


def fired_once(farm, total):
    fired = [k for a in farm.agents.values() for k in a.runner.fired]
    assert len(fired) == len(set(fired)), "a slot fired twice"
    return set(fired) <= set(range(total))


def by_name(report):
    return {a.name: a for a in report.agents}


def test_two_agents_share_every_slot_exactly():
    farm = SimFarm(spec(200, 20), expect=2)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and r.counts.planned == r.counts.scheduled == 4000 and r.counts.unfired == 0
    assert [a.counts.scheduled for a in r.agents] == [2000, 2000]
    assert fired_once(farm, 4000)
    assert sorted(k for a in farm.agents.values() for k in a.runner.fired) == list(range(4000))
    assert warnings(r) == []


def test_capacity_sets_each_agent_s_share():
    farm = SimFarm(spec(200, 10), expect=2)
    farm.agent("big", capacity=3.0), farm.agent("small", capacity=1.0)
    r = farm.finish()
    agents = by_name(r)
    assert agents["big"].share == 0.75 and agents["small"].share == 0.25
    assert agents["big"].counts.scheduled == 1500 and agents["small"].counts.scheduled == 500
    # Dealt in turn, not in blocks: the small agent fires every fourth slot.
    assert farm.agents["small"].runner.fired[:5] == [2, 6, 10, 14, 18]
    accounted(r)


def test_a_killed_agent_s_share_moves_and_its_unreported_slots_are_unfired():
    farm = SimFarm(spec(300, 12), expect=3, timing=Timing(**{**TIMING.__dict__, "agent_timeout": 2.0}))
    for name in ("a0", "a1", "a2"):
        farm.agent(name)
    farm.at(5.0)
    dead = farm.agents["a1"]
    dead.alive = False  # kill -9: it sends nothing more, ever
    farm.net.cut(dead.identity)
    r = farm.finish()
    accounted(r)
    assert r.status == 1 and r.counts.planned == 3600
    lost = by_name(r)["a1"]
    assert lost.lost and lost.lost_at_s == pytest.approx(7.0, abs=0.5)
    assert [e.agents for e in r.epochs] == [("a0", "a2")]
    epoch = r.epochs[0]
    # Its slots after its last report up to the new epoch: fired by nobody, or not reported.
    assert lost.counts.unfired > 0 and lost.unfired_to_s == pytest.approx(epoch.at_s)
    assert lost.unfired_from_s == pytest.approx(lost.counts.scheduled / 100)  # its reports end on a window
    assert lost.counts.unfired == lost.counts.planned - lost.counts.scheduled
    # After the epoch the two others fire every slot: the farm is at its full rate again.
    after = [k for a in ("a0", "a2") for k in farm.agents[a].runner.fired if k >= epoch.from_slot]
    assert sorted(after) == list(range(epoch.from_slot, 3600))
    assert any("a1" in w and "never fired" in w for w in warnings(r))


def test_a_partition_that_heals_loses_nothing_doubles_nothing_and_says_what_went_unfired():
    """The issue's case: two agents, 200/s for 20 s, one agent's link cut for 5 s."""
    farm = SimFarm(spec(200, 20), expect=2)
    a, b = farm.agent("a"), farm.agent("b")
    farm.at(5.0)
    farm.net.cut(b.identity, 5.0)
    r = farm.finish()
    accounted(r)
    assert r.counts.planned == 4000 and r.status == 1
    assert fired_once(farm, 4000)
    cut = by_name(r)["b"]
    # Every window the cut agent kept was re-sent after the partition and counted once.
    assert cut.counts.scheduled == len(b.runner.fired)
    assert by_name(r)["a"].counts.scheduled == len(a.runner.fired)
    # Its lease ran out before the coordinator gave its share away: it stopped first, and the
    # slots of its share between its stop and the new epoch were fired by nobody.
    epoch = r.epochs[0]
    stopped = b.runner.stopped_s
    assert stopped < epoch.at_s
    assert cut.counts.unfired == r.counts.unfired > 0
    assert (cut.unfired_from_s, cut.unfired_to_s) == (pytest.approx(stopped), pytest.approx(epoch.at_s))
    text = next(w for w in warnings(r) if "never fired" in w)
    assert f"{r.counts.unfired} of 4000 planned slots" in text and "b:" in text
    assert f"to {epoch.at_s:.2f}s" in text


def test_an_agent_that_joins_mid_run_takes_a_share_and_no_slot_fires_twice():
    farm = SimFarm(spec(200, 10), expect=1)
    farm.agent("first")
    farm.at(4.0)
    late = farm.agent("late")
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and r.counts.scheduled == r.counts.planned == 2000 and r.counts.unfired == 0
    assert fired_once(farm, 2000)
    assert [e.reason for e in r.epochs] == ["late joined"]
    assert late.runner.fired[0] >= r.epochs[0].from_slot and by_name(r)["late"].counts.scheduled > 300


def test_no_late_join_keeps_newcomers_spare():
    farm = SimFarm(spec(200, 6, late_join=False), expect=1)
    farm.agent("first")
    farm.at(2.0)
    farm.agent("late")
    r = farm.finish()
    assert [a.name for a in r.agents] == ["first"] and r.counts.scheduled == 1200
    assert farm.agents["late"].runner.fired == []


def test_a_silent_coordinator_stops_the_load_within_the_lease_and_once_agents_leave():
    farm = SimFarm(spec(200, 60), expect=2)
    a, _ = farm.agent("a"), farm.agent("b")
    farm.at(3.0)
    farm.coordinator_alive = False  # it dies: no frame ever again
    gone = farm.clock()
    farm.run_for(20.0)
    lease = TIMING.lease
    for agent in farm.agents.values():
        assert agent.runner.stopped_s is not None
        assert agent.runner.stopped_s <= gone - farm.started_at() + lease
        assert agent.status == 0  # --once agents left, their windows never acknowledged
    assert max(a.runner.fired) < 200 * (3.0 + lease + 0.1)


def test_windows_sent_twice_are_counted_once():
    farm = SimFarm(spec(100, 10), expect=1)
    a = farm.agent("a")
    link = a.driver.link
    sent = []

    def twice(frame):  # every frame arrives twice
        sent.append(frame)
        farm.net.inject(a.identity, frame)
        return type(link).send(link, frame)

    link.send = twice
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and r.counts.scheduled == 1000 and r.counts.succeeded == 1000
    assert sum(1 for f in sent if decode(f).type == "window") >= 10


def test_hostile_hellos_are_refused_with_a_reason_and_never_sink_the_run():
    farm = SimFarm(spec(200, 5), expect=2)
    bad_values = [math.inf, -math.inf, math.nan, 1e308, -1.0, 0.0, "1", None, True, [1]]
    strangers = []
    for i, value in enumerate(bad_values):
        link = farm.net.link(f"evil-{i}")
        link.send(msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", **HELLO, "capacity": value}))
        strangers.append(link)
    oversized = farm.net.link("evil-name")
    oversized.send(msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", **HELLO, "name": "x" * 100_000}))
    strangers.append(oversized)
    farm.agent("a"), farm.agent("b")
    farm.run_for(0.05)
    for link in strangers:
        replies = [decode(f) for f in link.recv(0)]
        assert [m.type for m in replies] == ["refused"]
        assert "invalid hello" in replies[0]["reason"]
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and [a.name for a in r.agents] == ["a", "b"]
    assert r.counts.scheduled == 1000 and [a.share for a in r.agents] == [0.5, 0.5]


def test_garbage_and_messages_out_of_place_are_counted_not_fatal():
    farm = SimFarm(spec(200, 5), expect=1)
    a = farm.agent("a")
    farm.at(1.0)
    junk = farm.net.link("junk")
    frames = [
        b"\x00\x01",
        msgpack.packb([1, 2]),
        encode("window", run="x", seq=1, w={}),  # from a peer that never said hello
        encode("start", run="x", plan={}),  # a coordinator's message, from a peer
    ]
    for f in frames:
        junk.send(f)
        farm.net.inject(a.identity, f)  # and the same as if from a known agent
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and r.counts.scheduled == 1000
    assert r.bad_frames >= len(frames) and any("bad frames" in w for w in warnings(r))


def test_a_window_that_is_not_valid_is_refused_and_named_not_merged():
    farm = SimFarm(spec(100, 5), expect=1)
    a = farm.agent("a")
    farm.at(1.5)
    run_id = farm.coord.state.run_id
    farm.net.inject(a.identity, encode("window", run=run_id, seq=10_000, w={"i": 0, "st": -5}))
    farm.net.inject(a.identity, encode("window", run=run_id, seq=7, w={"i": 1, "st": 1, "ok": 1e9}))
    r = farm.finish()
    assert r.counts.scheduled == 500 and r.counts.succeeded == 500
    assert any("not valid" in w for w in warnings(r)) and by_name(r)["a"].rejected_windows >= 1


def test_a_foreign_version_is_refused_in_an_envelope_naming_both_versions():
    farm = SimFarm(spec(100, 3), expect=1)
    foreign = farm.net.link("from-the-future")
    foreign.send(msgpack.packb({"v": 99, "t": "hello", "package": "9.9.9", "anything": "new"}))
    again = msgpack.packb({"v": 99, "t": "heartbeat"})
    foreign.send(again)
    farm.step()
    farm.step()
    replies = foreign.recv(0)
    assert len(replies) == 2
    raw = msgpack.unpackb(replies[0])
    assert raw["v"] == 99  # echoed: a peer of version 99 reads it as its own
    msg = decode(replies[0])
    assert "protocol 99 (pusher-farm 9.9.9)" in msg["reason"] and f"protocol {PROTOCOL_VERSION}" in msg["reason"]
    farm.agent("a")
    r = farm.finish()
    assert r.status == 0 and r.counts.scheduled == 300


@pytest.mark.parametrize(
    ("frame", "needles"),
    [
        # a coordinator of this design refusing us
        (
            refusal(
                "this coordinator speaks protocol 4 (pusher-farm 0.3.0); the agent speaks protocol 3",
                peer_version=3,
                package="0.3.0",
            ),
            ["protocol 4 (pusher-farm 0.3.0)", "protocol 3"],
        ),
        # a protocol 2 coordinator (before the envelope) refusing us in its own version
        (
            msgpack.packb(
                {
                    "v": 2,
                    "t": "refused",
                    "reason": "peer speaks protocol version 3, this side speaks 2: upgrade one side",
                }
            ),
            ["this side speaks 2", "the coordinator: protocol 2", f"this agent (protocol {PROTOCOL_VERSION}"],
        ),
        # a coordinator of another version that does not refuse but talks on
        (msgpack.packb({"v": 7, "t": "welcome", "package": "7.0"}), ["speaks protocol 7 (pusher-farm 7.0)"]),
    ],
)
def test_an_agent_refused_for_its_version_exits_2_naming_both_sides(frame, needles):
    machine = AgentMachine(name="a", host="h", pid=1, capacity=1.0, cpus=1, resolve=lambda n, p: None, package="0.2.0")
    actions = machine.on_frame(frame, 1.0)
    exits = [a for a in actions if isinstance(a, Exit)]
    assert len(exits) == 1 and exits[0].status == 2
    for needle in needles:
        assert needle in exits[0].reason
    assert "0.2.0" in exits[0].reason


def test_abort_reports_within_the_grace_and_counts_every_slot():
    farm = SimFarm(spec(200, 30), expect=2)
    farm.agent("a"), farm.agent("b")
    farm.at(4.0)
    farm.coord.stop(abort=True)
    asked = farm.clock()
    r = farm.finish()
    assert farm.clock() - asked <= TIMING.abort_grace + 0.05
    accounted(r)
    assert r.status == 1 and r.stopped_early and r.counts.planned < 1000


def test_a_stop_halts_every_agent_at_the_same_slot_and_leaves_nothing_unfired():
    farm = SimFarm(spec(200, 30), expect=3)
    for name in ("a", "b", "c"):
        farm.agent(name)
    farm.at(4.0)
    farm.coord.stop()
    r = farm.finish()
    accounted(r)
    reaches = {a.runner.reached for a in farm.agents.values()}
    assert len(reaches) == 1  # one slot for all
    assert r.status == 0 and r.stopped_early and r.counts.unfired == 0
    assert r.counts.planned == r.counts.scheduled == reaches.pop()
    assert fired_once(farm, 6000)


def test_a_short_agent_timeout_keeps_healthy_agents():
    timing = Timing(heartbeat=0.2, agent_timeout=0.6, wait_timeout=10.0, sync_pings=3, start_lead=0.3, end_grace=1.0)
    farm = SimFarm(spec(100, 8), expect=2, timing=timing)
    farm.agent("a"), farm.agent("b")
    r = farm.finish()
    assert r.status == 0 and not any(a.lost for a in r.agents)
    assert all(a.machine.heartbeat == 0.2 for a in farm.agents.values())


def test_an_agent_that_leaves_after_its_done_is_not_lost():
    # An --once agent whose user stops it at 2 s of an 8 s run: it reports, its share moves to the
    # other, it says bye and leaves long before the run ends: it left, it was not lost.
    farm = SimFarm(spec(100, 8), expect=2)
    farm.agent("short"), farm.agent("long")
    farm.at(2.0)
    farm.agents["short"].driver.report("stop", "", {})
    r = farm.finish()
    accounted(r)
    assert r.status == 0 and not any(a.lost for a in r.agents), warnings(r)
    assert by_name(r)["short"].state == "left" and by_name(r)["long"].state == "done"
    assert r.counts.planned == r.counts.scheduled + r.counts.unfired == 800
    assert farm.agents["short"].status == 0


def test_the_report_lists_each_agent_s_package_version_and_sums_dropped_gossips():
    farm = SimFarm(spec(100, 2), expect=2)
    for name, dropped in (("a", 3), ("b", 4)):
        farm.agent(name).runner.gossip_dropped = dropped
    r = farm.finish()
    d = to_dict(r)
    assert [a["package"] for a in d["agents"]] == ["0.2.0", "0.2.0"]
    assert r.gossip_dropped == d["gossip_dropped"] == 7 and [a.gossip_dropped for a in r.agents] == [3, 4]


def test_an_agent_that_cannot_build_the_target_refuses_with_its_error_kind():
    from pusher_farm.errors import MissingTarget

    farm = SimFarm(spec(100, 2), expect=2)
    farm.agent("a")
    b = farm.agent("b")

    def cannot(name, params):
        raise MissingTarget("cannot import module 'nowhere'")

    b.machine.resolve = cannot
    r = farm.finish()
    finish = farm.coord.finish
    assert r.status == 2 and finish.kind == "missing target"
    assert "agent 'b'" in finish.error and "cannot import module 'nowhere'" in finish.error
    assert r.counts.scheduled == 0


def test_a_one_way_loss_never_doubles_a_slot():
    """The agent still hears the coordinator, but the coordinator no longer hears it: the
    coordinator's messages say so (``seen`` grows), so they stop renewing the agent's lease."""
    farm = SimFarm(spec(200, 20), expect=2)
    _a, b = farm.agent("a"), farm.agent("b")
    farm.at(5.0)
    farm.net.cut(b.identity, 6.0, one_way=True)
    r = farm.finish()
    accounted(r)
    assert fired_once(farm, 4000)
    cut = by_name(r)["b"]
    assert cut.lost and b.runner.stopped_s < r.epochs[0].at_s
    assert cut.counts.scheduled == len(b.runner.fired)  # it came back with every window


def test_timing_defaults_hold_the_lease_rule():
    t = Timing()
    # An agent stops its load before its share can move: lease < loss + announcement lead.
    assert t.lease < t.agent_timeout + t.start_lead
    assert AgentTiming().coordinator_timeout <= t.lease


def test_two_agents_lost_at_once_leave_the_third_every_slot_after_the_epochs():
    farm = SimFarm(spec(300, 12), expect=3)
    for name in ("a", "b", "c"):
        farm.agent(name)
    farm.at(4.0)
    for name in ("b", "c"):  # both go silent at the same moment
        farm.agents[name].alive = False
        farm.net.cut(farm.agents[name].identity)
    r = farm.finish()
    accounted(r)
    assert fired_once(farm, 3600)
    froms = [e.from_slot for e in r.epochs]
    assert froms == sorted(froms)  # epochs never go back
    last = r.epochs[-1]
    assert last.agents == ("a",)
    after = sorted(k for k in farm.agents["a"].runner.fired if k >= last.from_slot)
    assert after == list(range(last.from_slot, 3600))


def test_a_stop_right_after_a_late_join_stops_the_newcomer_too():
    farm = SimFarm(spec(200, 60), expect=1)
    farm.agent("first")
    farm.at(4.0)
    late = farm.agent("late")
    while len(farm.coord.state.planner.epochs) < 2:  # its share is announced, not yet begun
        farm.step()
    farm.coord.stop()
    r = farm.finish(limit=30)
    accounted(r)
    assert r.counts.unfired == 0 and late.runner.stopped_s is not None
    assert {a.runner.reached for a in farm.agents.values()} == {r.counts.planned}
    assert late.runner.fired == []  # told to stop before its share began


def test_an_agent_its_user_stops_hands_its_share_to_the_others():
    farm = SimFarm(spec(200, 12), expect=2)
    a, b = farm.agent("a"), farm.agent("b")
    farm.at(4.0)
    b.driver.report("stop", "", {})  # Ctrl-C on b's host
    r = farm.finish()
    accounted(r)
    assert fired_once(farm, 2400)
    assert [e.reason for e in r.epochs] == ["b stopped"]
    epoch = r.epochs[0]
    assert sorted(k for k in a.runner.fired if k >= epoch.from_slot) == list(range(epoch.from_slot, 2400))
    stopped = by_name(r)["b"]
    assert stopped.stopped_early and stopped.counts.unfired == r.counts.unfired > 0
    assert stopped.unfired_to_s == pytest.approx(epoch.at_s)


def farm_on_sim(target, load, *thresholds, params=None):
    """A farm of two agents on the simulator (virtual clock) with ``--abort-on-fail``."""
    run = run_of(Config(name="w", target=target, params=params or {}, load=load, timeout=1.0),
                 thresholds=thresholds, abort_on_fail=True)  # fmt: skip
    farm = SimFarm(run, expect=2)
    farm.agent("a"), farm.agent("b")
    return farm.finish()


def test_abort_on_fail_stops_the_run_within_two_windows():
    r = farm_on_sim("sleep", Open(Constant(100, 30)), "p99<1ms", params={"ms": 5})
    assert r.status == EXIT_THRESHOLDS and r.stopped_early
    # the first window judged (the second: the first is the start) fails it; it is merged once
    # every agent has reported the next, and the run stops then (30 s were planned)
    assert 3.0 < r.duration_s < 3.5 and len(r.series) == 4
    assert r.counts.planned == r.counts.scheduled + r.counts.unfired < 400
    assert any("threshold p99<1ms failed (--abort-on-fail)" in n for n in r.notes)


def test_abort_on_fail_leaves_counts_and_rates_to_the_end():
    """A count can only grow: 'succeeded>=800' is not failed by the first windows of a run that
    will get there."""
    r = farm_on_sim("noop", Open(Constant(300, 3)), "succeeded>=800", "achieved_rps>=0.9*requested")
    assert r.status == 0 and not r.stopped_early and r.counts.succeeded == 900
    assert [t["ok"] for t in r.thresholds] == [True, True]
