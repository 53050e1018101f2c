"""``farm agent`` (serve runs from a coordinator) and ``farm keys`` (who may join)."""

from __future__ import annotations

import sys
from typing import Any

import click

from pusher_farm.cli.common import fail, setup_logging, stop_on_signals

__all__ = ["agent", "keys"]


@click.command()
@click.option("--connect", required=True, help="The coordinator, e.g. tcp://10.0.0.5:5555.")
@click.option("--name", help="This agent's name in reports (default: host-pid).")
@click.option(
    "--capacity", type=float, default=1.0, show_default=True, help="Relative weight of this agent's share of the rate."
)
@click.option("--once", is_flag=True, help="Serve one run, then exit (also when the coordinator goes away).")
@click.option(
    "--gossip",
    "gossips",
    multiple=True,
    metavar="MODULE:ATTR",
    help="A Gossiper on this host that hears every slot's events (repeatable).",
)
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), help="CURVE keys folder (farm keys generate).")
@click.option("--key", "key_name", default="agent-0", show_default=True, help="This agent's key in --keys.")
@click.option("--metrics", "metrics_address", metavar="HOST:PORT", help="Serve this agent's own Prometheus /metrics.")
@click.option("--metrics-token", help="A bearer token /metrics asks for (needed beyond loopback).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def agent(
    connect: str,
    name: str | None,
    capacity: float,
    once: bool,
    gossips: tuple[str, ...],
    keys_dir: str | None,
    key_name: str,
    metrics_address: str | None,
    metrics_token: str | None,
    quiet: bool,
) -> None:
    """Serve farm runs from a coordinator, one after another, until stopped."""
    from pusher_farm.cluster.agent.agent import Agent
    from pusher_farm.cluster.protocol.messages import check_capacity
    from pusher_farm.cluster.transport.security import AgentKeys
    from pusher_farm.errors import PusherError

    try:
        check_capacity(capacity)
    except PusherError as exc:
        fail(f"--{exc.reason}")
    listeners = [_gossiper(g) for g in gossips]
    keys = None if keys_dir is None else AgentKeys.load(keys_dir, key_name)
    setup_logging(quiet)
    metrics = None
    if metrics_address is not None:
        from pusher_farm.cluster.control.server import ControlServer, parse_address
        from pusher_farm.cluster.control.snapshot import AgentMetrics
        from pusher_farm.report.metrics import render_metrics

        try:
            host, port = parse_address(metrics_address, metrics_token)
            http = ControlServer(host, port, metrics_token, render=render_metrics, changes=False)
            bound = http.start()
        except PusherError as exc:
            fail(f"--metrics {metrics_address}: {exc.reason}")
        click.echo(f"agent metrics on http://{host}:{bound}/metrics", err=True)
        metrics = AgentMetrics(http)
    server = Agent(connect, name=name, capacity=capacity, once=once, gossips=listeners, keys=keys, metrics=metrics)
    stop_on_signals(
        lambda abort: server.stop(abort=abort),
        first="agent stopping: a run in progress stops and reports first (Ctrl-C again to abort its calls)",
        second="agent aborting: calls in flight are canceled",
    )
    sys.exit(server.serve())


def _gossiper(spec: str) -> Any:
    from pusher_farm.errors import PusherError
    from pusher_farm.targets import import_attr

    try:
        obj = import_attr(spec, "gossip listener")
    except PusherError as exc:
        fail(f"--gossip {spec!r}: {exc.reason}")
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "listen")):
        obj = obj()
    if not (hasattr(obj, "listen") and hasattr(obj, "stop")):
        fail(f"--gossip {spec!r} is not a Gossiper (needs listen(worker, gossips) and stop())")
    return obj


@click.group()
def keys() -> None:
    """CURVE keys: only authorised agents join, agents obey only their coordinator."""


@keys.command("generate")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--agents", type=int, default=1, show_default=True, help="How many agent keys to make.")
def keys_generate(directory: str, agents: int) -> None:
    """Make a coordinator key and agent keys in DIRECTORY (never overwrites).

    \\b
    Copy to each agent host: DIRECTORY/coordinator.key and its own agent-I.key_secret.
    The coordinator uses DIRECTORY/coordinator.key_secret and DIRECTORY/authorized/.
    """
    from pusher_farm.cluster.transport.security import generate

    if agents < 1:
        fail(f"--agents must be at least 1, got {agents}")
    made = generate(directory, agents)
    click.echo(f"wrote {len(made)} files to {directory}: coordinator + {agents} agent key(s)")
