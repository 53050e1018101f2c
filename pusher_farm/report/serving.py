"""A run's HTTP side with its formats: the live page and the Prometheus exposition on a
``ControlServer`` (``cluster.control``), started at ``HOST:PORT``. The command line's ``--http``
and the Python API's ``control=`` both make it here, under the one address rule (loopback, or a
token beyond it)."""

from __future__ import annotations

from pusher_farm.cluster.control.server import ControlServer, parse_address
from pusher_farm.report.dashboard import page
from pusher_farm.report.metrics import render_metrics

__all__ = ["serve_control"]


def serve_control(address: str, token: str | None = None) -> ControlServer:
    """The run's HTTP side at ``address`` (``HOST:PORT``; port 0: a free one, see
    ``ControlServer.port``), serving already; ``InvalidOption`` for an address beyond loopback
    without ``token``, or one it cannot serve on."""
    host, port = parse_address(address, token)
    server = ControlServer(host, port, token, render=render_metrics, page=page())
    server.start()
    return server
