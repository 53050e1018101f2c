"""Feeds: JSONL, CSV, stdin and iterables; malformed lines counted with their numbers."""

import io

import pytest

from pusher_farm.errors import InvalidOption
from pusher_farm.items.feeds import IterableFeed, JsonlFeed, open_feed


def test_jsonl_items_take_their_id_and_body_and_bad_lines_are_counted(tmp_path):
    p = tmp_path / "items.jsonl"
    p.write_text('{"id": "a", "body": "x"}\n\n{"user": 7}\nnot json\n"plain"\n{"id": 5\n')
    feed = open_feed(str(p))
    items = list(feed.items())
    assert [(w.id, w.body) for w in items] == [("a", "x"), ("3", {"user": 7}), ("5", "plain")]
    assert feed.bad.count == 2 and [n for n, _ in feed.bad.first] == [4, 6]
    assert items[1].fields() == {"user": 7, "id": "3", "body": {"user": 7}}


def test_csv_rows_are_maps_and_short_rows_are_counted(tmp_path):
    p = tmp_path / "items.csv"
    p.write_text("id,name\n1,ann\n2\n3,bob\n")
    feed = open_feed(str(p))
    assert [(w.id, w.body) for w in feed.items()] == [
        ("1", {"id": "1", "name": "ann"}),
        ("3", {"id": "3", "name": "bob"}),
    ]
    assert feed.bad.count == 1 and feed.bad.first[0][0] == 3


def test_a_file_cycles_and_a_stream_or_generator_cannot():
    cycled = IterableFeed([1, 2]).items(cycle=True)
    assert [next(cycled).body for _ in range(5)] == [1, 2, 1, 2, 1]
    with pytest.raises(InvalidOption, match="only once"):
        next(JsonlFeed(None, io.StringIO("1\n")).items(cycle=True))
    with pytest.raises(InvalidOption, match="only once"):
        next(IterableFeed(x for x in [1]).items(cycle=True))


@pytest.mark.parametrize(
    "spec, message",
    [("missing.jsonl", "does not exist"), ("items.txt", "give a .jsonl"), (".", "give a .jsonl")],
)
def test_a_feed_that_cannot_be_read_is_refused_before_any_load(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidOption, match=message):
        open_feed(spec)
