"""The one settings record: checked once when made, from numbers or text, and on the wire."""

import math

import pytest

import pusher_farm as pf
from pusher_farm.core.config import Config
from pusher_farm.core.load import Closed, Drain, Open
from pusher_farm.core.schedule import Constant, parse_stages
from pusher_farm.core.setting_checks import MAX_OVERTIME
from pusher_farm.errors import InvalidOption, InvalidOvertime, ProtocolError


@pytest.mark.parametrize(
    ("setting", "given", "held"),
    [
        ("timeout", "30s", 30.0),
        ("timeout", "500ms", 0.5),
        ("timeout", "none", None),
        ("timeout", None, None),
        ("timeout", 2, 2.0),
        ("window", "1m", 60.0),
        ("batch", "0", 0.0),
        ("batch", "4ms", 0.004),
        ("spin", 0, 0.0),
        ("spin", "2ms", 0.002),
        ("overtime", "64", 64),
        ("max_names", "50", 50),
    ],
)
def test_settings_read_numbers_and_text(setting, given, held):
    assert getattr(Config(**{setting: given}), setting) == held


@pytest.mark.parametrize(
    ("setting", "given", "error", "words"),
    [
        ("timeout", 0, InvalidOption, "none for no bound"),
        ("timeout", "0", InvalidOption, "none for no bound"),
        ("timeout", -1, InvalidOption, "timeout must be"),
        ("timeout", math.nan, InvalidOption, "timeout must be"),
        ("timeout", "soon", InvalidOption, "cannot read timeout"),
        ("window", 0.001, InvalidOption, "window must be between 10ms and 3600s"),
        ("batch", 0.5, InvalidOption, "batch must be between 0 and 100ms"),
        ("spin", math.inf, InvalidOption, "spin must be"),
        ("overtime", -1, InvalidOvertime, "more or equal zero"),
        ("overtime", 1.5, InvalidOvertime, "whole number"),
        ("overtime", True, InvalidOvertime, "whole number"),
        ("overtime", MAX_OVERTIME + 1, InvalidOvertime, "at most"),
        ("on_agent_loss", "panic", InvalidOption, "rebalance, abort, continue"),
        ("late_join", "yes", InvalidOption, "true or false"),
        ("params", {"k": object()}, InvalidOption, "plain text, numbers"),
        ("target", "", InvalidOption, "target name"),
        ("listeners", [object()], InvalidOption, "not a Gossiper"),
    ],
)
def test_nonsense_is_refused_by_the_setting_s_own_check(setting, given, error, words):
    with pytest.raises(error, match=words):
        Config(**{setting: given})


def test_replace_checks_again_and_never_changes_the_original():
    c = Config(overtime=5)
    assert c.replace(overtime=6).overtime == 6 and c.overtime == 5
    with pytest.raises(InvalidOvertime):
        c.replace(overtime=-1)
    with pytest.raises(InvalidOption, match="no setting called 'overtim'"):
        c.replace(overtim=6)


def test_offers_fail_where_they_are_written():
    with pytest.raises(InvalidOvertime):
        pf.with_overtime(-1)
    with pytest.raises(InvalidOption):
        pf.with_batch(1.0)
    config = pf.with_timeout("2s")(Config())
    assert config.timeout == 2.0


def test_the_wire_carries_what_agents_need_and_nothing_local():
    class Listener:
        def listen(self, worker, gossips): ...
        def stop(self): ...

    c = Config(
        target="noop",
        params={"ms": "5", "headers": ["A: b"]},
        load=Open(parse_stages("1s:0-10,2s:10").cut(2.5)),
        overtime=7,
        timeout=None,
        batch=0,
        listeners=(Listener(),),
        on_agent_loss="abort",
    )
    wire = c.to_wire()
    assert "listeners" not in wire and "on_agent_loss" not in wire and "gossip_capacity" not in wire
    back = Config.from_wire(wire)
    assert back.replace(listeners=c.listeners, on_agent_loss="abort") == c
    assert back.load.profile.stages == c.load.profile.stages and back.load.length() == 2.5


@pytest.mark.parametrize(
    "wire",
    [
        "not a map",
        {"overtime": -1},
        {"timeout": math.inf},
        {"window": math.nan},
        {"load": {"kind": "open", "profile": [[1.0, math.inf, 1.0]]}},
        {"load": {"kind": "open", "profile": [[math.inf, 1.0, 1.0], [1.0, 1.0, 1.0]]}},
        {"load": {"kind": "open", "profile": []}},
        {"load": {"kind": "open", "profile": [[1.0, 1.0]]}},
        {"load": {"kind": "burst", "profile": [[1.0, 1.0, 1.0]]}},
        {"load": {"kind": "closed", "profile": [[1.0, 2.0, 2.0]], "think": [0.2, 0.1]}},
        {"load": {"kind": "drain", "profile": [[math.inf, 5.0, 5.0]], "cap": -1}},
        {"profile": [[1.0, 1.0, 1.0]]},  # the load travels as a model, not as a bare profile
        {"params": {"k": {"nested": "map"}}},
        {"params": {"k": "x" * (2 << 20)}},
        {"listeners": []},  # a local setting never comes from the wire
        {"warm": 10},  # a setting this side does not know
    ],
)
def test_settings_from_the_wire_are_checked_like_any_other(wire):
    with pytest.raises(ProtocolError):
        Config.from_wire(wire)


def test_an_open_ended_constant_travels_too():
    c = Config(load=Open(Constant(5.0)))
    assert math.isinf(Config.from_wire(c.to_wire()).load.length())


@pytest.mark.parametrize(
    "load",
    [
        Open(parse_stages("1s:0-10,2s:10")),
        Closed(Constant(20, 10), think=(0.05, 0.15), iterations=3),
        Closed(parse_stages("2s:0,5s:0-5")),
        Drain(Constant(8), cap=400),
        Drain(Constant(8)),
    ],
)
def test_every_load_model_travels_as_itself(load):
    back = Config.from_wire(Config(load=load).to_wire()).load
    assert back == load and type(back) is type(load) and back.describe() == load.describe()


def test_rules_between_settings_live_in_the_record():
    with pytest.raises(InvalidOption, match="parallel 20 is more than overtime 5"):
        Config(load=Drain(Constant(20)), overtime=5)
    with pytest.raises(InvalidOption, match="processes a feed once"):
        Config(load=Drain(Constant(2)), feed=[1, 2], feed_cycle=True)
    with pytest.raises(InvalidOption, match="abort_on_fail needs a threshold"):
        Config(abort_on_fail=True)


def test_digits_that_are_not_ascii_are_refused_not_a_traceback():
    with pytest.raises(InvalidOvertime):
        Config(overtime="²")
    with pytest.raises(ProtocolError):
        Config.from_wire({"overtime": "²"})
