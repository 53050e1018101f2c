"""The dealer, pure: credit, a lost agent's items going out again, each item finished once."""

from pusher_farm.items.dealer import Dealer
from pusher_farm.items.item import Work


def dealer(n):
    return Dealer(iter([Work(str(i), {"n": i}) for i in range(n)]))


def ok(seq, attempts=1):
    return {"seq": seq, "status": "success", "attempts": attempts, "result": seq}


def test_an_agent_gets_what_its_credit_leaves_room_for():
    d = dealer(10)
    got = d.deal("a", 4)
    assert [x[0] for x in got] == [0, 1, 2, 3] and got[0][1:] == ["0", {"n": 0}]
    assert d.deal("a", 4) == [] and d.held("a") == 4  # nothing more: it holds its credit
    d.finish("a", ok(0))
    assert [x[0] for x in d.deal("a", 4)] == [4]


def test_a_lost_agents_items_go_out_again_first_under_the_same_number():
    d = dealer(6)
    d.deal("a", 3)
    d.deal("b", 2)
    d.finish("a", ok(1))
    assert d.lose("a") == 2 and d.reissued == 2
    assert [x[0] for x in d.deal("b", 5)] == [0, 2, 5]
    _, record = d.finish("b", ok(0))
    assert record["agent"] == "b" and record["id"] == "0"
    assert d.finish("a", ok(0)) is None and d.duplicates == 1  # the lost one came back: dropped
    # the lost agent reports an item before the one it went to: first report wins, once
    assert d.finish("a", ok(2)) is not None and d.finish("b", ok(2)) is None


def test_dry_when_the_feed_is_out_and_nothing_is_held():
    d = dealer(2)
    assert not d.dry
    d.deal("a", 5)
    assert d.exhausted and not d.dry
    d.finish("a", ok(0))
    _, record = d.finish("a", {"seq": 1, "status": "failure", "attempts": 3, "error": "Retry: x",
                                "retries": ["Retry: x"] * 3})  # fmt: skip
    assert d.dry and record["body"] == {"n": 1} and record["error"] == "Retry: x"
    s = d.summary()
    assert s["by_status"] == {"success": 1, "failure": 1} and s["attempts"] == {"1": 1, "3": 1} and s["retries"] == 3


def test_items_that_cannot_cross_the_wire_are_refused_with_a_reason():
    items = [Work("ok", {"n": 1}), Work("x" * 2000, 1), Work("big", "b" * (2 << 20)), Work("obj", {1, 2}),
             Work("huge", 1 << 70), Work("last", None)]  # fmt: skip
    d = Dealer(iter(items))
    assert [x[1] for x in d.deal("a", 10)] == ["ok", "last"]  # msgpack cannot carry a set or 2**70
    assert d.refused == 4 and "over 1024 characters" in d.refused_first[0] and "over 1 MiB" in d.refused_first[1]
    assert all("not plain data" in r for r in d.refused_first[2:])


def test_deeply_nested_results_and_odd_values_become_plain_data():
    from pusher_farm.items.item import plain

    deep: list = []
    for _ in range(600):
        deep = [deep]
    assert plain(deep) is not None  # no RecursionError
    assert plain(1 << 70) == str(1 << 70) and plain({1, 2}).startswith("{")


def test_a_paused_dealer_hands_out_nothing_until_resumed():
    d = dealer(5)
    d.paused = True
    assert d.deal("a", 5) == []
    d.paused = False
    assert len(d.deal("a", 5)) == 5
