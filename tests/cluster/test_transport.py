"""Both transports move frames; the ZeroMQ one maps its errors and keeps the bind policy."""

import socket

import pytest

from pusher_farm.cluster.transport.inproc import Network
from pusher_farm.cluster.transport.zeromq import ZmqHub, ZmqLink
from pusher_farm.errors import FarmError


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_inproc_frames_arrive_after_the_delay_and_a_cut_drops_them_both_ways():
    clock = Clock()
    net = Network(clock, delay=0.01)
    hub, link = net.hub(), net.link("a")
    link.send(b"one")
    assert hub.recv(0) == []
    clock.now = 0.02
    assert hub.recv(0) == [("a", b"one")]
    net.cut("a", 1.0)
    link.send(b"lost")
    hub.send("a", b"lost too")
    clock.now = 0.5
    assert hub.recv(0) == [] and link.recv(0) == []
    clock.now = 1.1  # healed
    hub.send("a", b"back")
    clock.now = 1.2
    assert link.recv(0) == [b"back"]


def test_a_fresh_link_replaces_the_old_one_and_its_queue():
    clock = Clock()
    net = Network(clock)
    hub, old = net.hub(), net.link("a")
    hub.send("a", b"for the old socket")
    new = net.link("a")
    hub.send("a", b"for the new one")
    assert new.recv(0) == [b"for the new one"] and old.recv(0) == [b"for the old socket"]


def test_zmq_moves_frames_between_hub_and_link():
    import zmq

    hub = ZmqHub("tcp://127.0.0.1:*")
    context = zmq.Context()
    link = ZmqLink(context, hub.endpoint, "agent-1")
    try:
        link.send(b"hello")
        got = hub.recv(5.0)
        assert got == [("agent-1", b"hello")]
        assert hub.send("agent-1", b"welcome")
        assert link.recv(5.0) == [b"welcome"]
        assert not hub.send("nobody", b"x")
    finally:
        link.close()
        hub.close()
        context.term()


def test_zmq_errors_leave_as_farm_errors_with_what_to_do():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FarmError, match=f"cannot bind tcp://127.0.0.1:{port}"):
            ZmqHub(f"tcp://127.0.0.1:{port}")
    with pytest.raises(FarmError, match="reachable from other hosts"):
        ZmqHub("tcp://0.0.0.0:0")
    with pytest.raises(FarmError, match="endpoint like"):
        ZmqHub("127.0.0.1:5555")
    import zmq

    with pytest.raises(FarmError, match="cannot connect"):
        ZmqLink(zmq.Context.instance(), "tcp://no-port-here", "a")


def test_a_coordinator_in_python_gets_the_same_bind_policy():
    from pusher_farm.cluster.coordinator.coordinator import Coordinator
    from pusher_farm.core.config import Config
    from pusher_farm.core.load import Open
    from pusher_farm.core.run import Run
    from pusher_farm.core.schedule import Constant

    spec = Run.of([Config(target="noop", load=Open(Constant(1, 1)))])
    with pytest.raises(FarmError, match="--insecure"):
        Coordinator(spec, bind="tcp://0.0.0.0:0")
    with Coordinator(spec, bind="tcp://0.0.0.0:0", insecure=True) as coord:
        assert coord.endpoint.startswith("tcp://0.0.0.0:")
