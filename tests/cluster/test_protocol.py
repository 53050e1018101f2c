import os
import random

import msgpack
import pytest

from pusher_farm.cluster.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, VersionMismatch, decode, encode
from pusher_farm.errors import ProtocolError


def test_round_trip():
    frame = encode("hello", name="a", host="h", pid=1, capacity=1.0, cpus=2)
    msg = decode(frame)
    assert msg.type == "hello" and msg["name"] == "a" and msg["v"] == PROTOCOL_VERSION


def test_version_mismatch_names_both_versions():
    frame = msgpack.packb({"v": 99, "t": "hello"})
    with pytest.raises(VersionMismatch, match=f"99.*{PROTOCOL_VERSION}"):
        decode(frame)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2, 3],
        "hello",
        {"v": PROTOCOL_VERSION},
        {"v": PROTOCOL_VERSION, "t": "nope"},
        {"v": PROTOCOL_VERSION, "t": "ping", "id": "x", "t0": 1.0},
        {"v": PROTOCOL_VERSION, "t": "ping", "id": True, "t0": 1.0},
        {"v": PROTOCOL_VERSION, "t": "window", "run": "r", "seq": 1},
        {1: 2},
    ],
)
def test_malformed_messages_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(body))


def test_extension_types_and_huge_frames_are_refused():
    with pytest.raises(ProtocolError):
        decode(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(ProtocolError):
        decode(b"\x00" * (MAX_MESSAGE_BYTES + 1))


def test_random_bytes_only_ever_raise_protocol_error():
    rng = random.Random(7)
    for _ in range(5000):
        frame = (
            os.urandom(rng.randint(0, 64))
            if rng.random() < 0.5
            else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        )
        try:
            decode(frame)
        except ProtocolError:
            pass


def test_sender_side_schema_check():
    with pytest.raises(ProtocolError):
        encode("ack", run="r")
    with pytest.raises(ProtocolError):
        encode("nope")
