"""Plugins by name: targets, feeds and failure handlers that installed packages offer.

A package makes a name usable on every host it is installed on by declaring an entry point in
one of three groups::

    [project.entry-points."pusher_farm.targets"]
    checkout = "shop.load:checkout"          # a target (or a targets.Plugin with parameters)
    [project.entry-points."pusher_farm.feeds"]
    kafka = "shop.load:kafka_feed"           # FUNCTION(argument) -> a Feed or an iterable
    [project.entry-points."pusher_farm.failure_handlers"]
    pager = "shop.load:page_someone"         # FUNCTION(record) for each failed item

``farm run checkout``, ``--feed kafka:orders`` and ``--failure-handler pager`` then find them.
Nothing runs code that came over the wire: agents look names up in their own installation.
``farm plugins`` lists every name with where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pusher_farm.errors import MissingTarget

__all__ = ["GROUPS", "Found", "find", "installed", "load"]

#: kind -> entry-point group
GROUPS = {
    "target": "pusher_farm.targets",
    "feed": "pusher_farm.feeds",
    "failure handler": "pusher_farm.failure_handlers",
}


@dataclass(frozen=True)
class Found:
    """One plugin: its kind, name, the object path and the package it comes from."""

    kind: str
    name: str
    value: str
    package: str


def _points(kind: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def find(kind: str) -> dict[str, Found]:
    out = {}
    for name, ep in _points(kind).items():
        dist = ep.dist
        package = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
        out[name] = Found(kind, name, ep.value, package)
    return out


def installed() -> list[Found]:
    """Every installed plugin, by kind and name."""
    return [f for kind in GROUPS for f in sorted(find(kind).values(), key=lambda f: f.name)]


def load(kind: str, name: str) -> Any | None:
    """The object the plugin ``name`` of ``kind`` names, imported here (None: no such plugin)."""
    ep = _points(kind).get(name)
    if ep is None:
        return None
    try:
        return ep.load()
    except Exception as exc:  # the plugin's own module failing to import
        raise MissingTarget(
            f"{kind} plugin {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from None
