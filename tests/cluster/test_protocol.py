"""Messages on the wire: every field checked, the refusal envelope readable by any version."""

import math
import random

import msgpack
import pytest

from pusher_farm.cluster.protocol.messages import (
    MAX_CAPACITY,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    InvalidMessage,
    VersionMismatch,
    decode,
    encode,
    refusal,
)
from pusher_farm.errors import ProtocolError

HELLO = {"name": "a", "host": "h", "pid": 1, "capacity": 1.0, "cpus": 2, "package": "0.2.0"}


def frame(**body):
    return msgpack.packb({"v": PROTOCOL_VERSION, **body}, use_bin_type=True)


def test_round_trip_keeps_checked_fields_and_drops_unknown_ones():
    msg = decode(msgpack.packb({"v": PROTOCOL_VERSION, "t": "hello", **HELLO, "extra": "x" * 10}))
    assert msg.type == "hello" and msg.body == HELLO
    assert decode(encode("hello", **HELLO)).body == HELLO


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity", math.inf),
        ("capacity", -math.inf),
        ("capacity", math.nan),
        ("capacity", 1e308),
        ("capacity", MAX_CAPACITY * 1.01),
        ("capacity", 0.0),
        ("capacity", -1.0),
        ("capacity", "1"),
        ("capacity", True),
        ("capacity", None),
        ("pid", -1),
        ("pid", 1 << 40),
        ("pid", 1.5),
        ("cpus", 0),
        ("name", ""),
        ("name", "x" * 201),
        ("name", 7),
        ("host", "h" * 256),
        ("package", ""),
        ("package", ["0.2.0"]),
    ],
)
def test_hostile_hello_values_are_invalid_messages(field, value):
    with pytest.raises(InvalidMessage) as info:
        decode(frame(t="hello", **{**HELLO, field: value}))
    assert info.value.type == "hello" and f"hello.{field}" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        "hello",
        {"v": PROTOCOL_VERSION},
        {"v": PROTOCOL_VERSION, "t": "nope"},
        {"v": PROTOCOL_VERSION, "t": "ping", "id": "x", "t0": 1.0},
        {"v": PROTOCOL_VERSION, "t": "ping", "id": True, "t0": 1.0},
        {"v": PROTOCOL_VERSION, "t": "ping", "id": 1, "t0": math.nan},
        {"v": PROTOCOL_VERSION, "t": "pong", "id": 1, "t0": 1.0, "t1": math.inf, "t2": 1.0},
        {"v": PROTOCOL_VERSION, "t": "window", "run": "r", "seq": 1},
        {"v": PROTOCOL_VERSION, "t": "window", "run": "r", "seq": -1, "w": {}},
        {"v": PROTOCOL_VERSION, "t": "window", "run": "r" * 65, "seq": 1, "w": {}},
        {"v": PROTOCOL_VERSION, "t": "done", "run": "r", "windows": 1, "stopped_early": 1},
        {"v": PROTOCOL_VERSION, "t": "done", "run": "r", "windows": 1, "stopped_early": False, "sent_s": -1.0},
        {
            "v": PROTOCOL_VERSION,
            "t": "epoch",
            "run": "r",
            "at_s": 1.0,
            "firsts": [1],
            "weights": [1.0, math.nan],
            "index": 0,
        },
        {
            "v": PROTOCOL_VERSION,
            "t": "epoch",
            "run": "r",
            "at_s": 1.0,
            "firsts": [1],
            "weights": [1.0, 0.0],
            "index": 0,
        },
        {"v": PROTOCOL_VERSION, "t": "epoch", "run": "r", "at_s": -1.0, "firsts": [1], "weights": [1.0], "index": 0},
        {"v": PROTOCOL_VERSION, "t": "epoch", "run": "r", "at_s": 1.0, "firsts": [-1], "weights": [1.0], "index": 0},
        {
            "v": PROTOCOL_VERSION,
            "t": "epoch",
            "run": "r",
            "at_s": 1.0,
            "firsts": [1],
            "weights": [1.0],
            "index": 0,
            "changes": [{"load": {}}],
        },
        {
            "v": PROTOCOL_VERSION,
            "t": "done",
            "run": "r",
            "windows": 1,
            "stopped_early": False,
            "scenarios": [{"planned": -1, "stopped_early": False}],
        },
        {"v": PROTOCOL_VERSION, "t": "want", "run": "r", "sc": 64, "credit": 1},
        {"v": PROTOCOL_VERSION, "t": "prepare", "run": "r", "scenarios": [["noop"]]},
        {"v": PROTOCOL_VERSION, "t": "heartbeat", "cpu": math.inf},
        {"v": PROTOCOL_VERSION, "t": "refuse", "run": "r", "error": "e" * 5000},
        {1: 2},
    ],
)
def test_malformed_messages_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(body))


def test_a_foreign_version_names_both_versions_and_the_peer_package():
    with pytest.raises(VersionMismatch, match=f"99.*{PROTOCOL_VERSION}") as info:
        decode(msgpack.packb({"v": 99, "t": "hello", "package": "9.9.9"}))
    assert info.value.peer == 99 and info.value.package == "9.9.9"
    with pytest.raises(VersionMismatch) as info:
        decode(msgpack.packb({"v": "three", "t": "hello", "package": ["x"]}))
    assert info.value.peer is None and info.value.package is None  # nothing hostile is kept


def test_the_refusal_envelope_reads_whatever_its_version():
    raw = refusal("go away", peer_version=1, package="0.2.0")
    body = msgpack.unpackb(raw)
    assert body["v"] == 1  # the refused peer's own version, so an old peer can read it
    msg = decode(raw)
    assert msg.type == "refused" and msg["reason"] == "go away"
    assert msg["versions"] == [PROTOCOL_VERSION] and msg["package"] == "0.2.0"
    # What protocol 2 coordinators send: their version, a reason, nothing else.
    old = decode(msgpack.packb({"v": 2, "t": "refused", "reason": "upgrade one side"}))
    assert old.type == "refused" and old["v"] == 2 and "versions" not in old.body


def test_extension_types_and_huge_frames_are_refused():
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(ProtocolError):
        decode(b"\x00" * (MAX_MESSAGE_BYTES + 1))


def test_random_bytes_and_mutated_frames_only_ever_raise_protocol_error():
    rng = random.Random(7)
    valid = [
        encode("hello", **HELLO),
        encode("window", run="r", seq=3, w={"i": 0}),
        encode("done", run="r", windows=3, stopped_early=False, reach=10),
        encode(
            "epoch", run="r", at_s=2.5, firsts=[5, 0], weights=[1.0, 2.0], index=1, changes=[{"sc": 1, "overtime": 4}]
        ),
        encode("done", run="r", windows=3, stopped_early=False, scenarios=[{"planned": 5, "stopped_early": False}]),
    ]
    for _ in range(5000):
        if rng.random() < 0.5:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        else:
            data = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        try:
            decode(data)
        except ProtocolError:
            pass


def test_sender_side_schema_check():
    with pytest.raises(ProtocolError):
        encode("ack", run="r")
    with pytest.raises(ProtocolError):
        encode("nope")
