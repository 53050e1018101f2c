"""``farm plugins``: the names installed packages offer, and where each comes from."""

from __future__ import annotations

import click

__all__ = ["plugins"]


@click.command()
def plugins() -> None:
    """List the targets, feeds and failure handlers usable by name on this host: the built-ins
    and those installed packages declare (entry points pusher_farm.targets, pusher_farm.feeds,
    pusher_farm.failure_handlers)."""
    from pusher_farm import plugins as found
    from pusher_farm.targets import builtin_names

    rows = [("target", name, "built-in", "pusher_farm.targets") for name in builtin_names()]
    rows += [("feed", kind, "built-in", "pusher_farm.items") for kind in ("FILE.jsonl", "FILE.csv", "-", "redis://")]
    rows.append(("failure handler", "dead-letter", "built-in", "--dead-letter FILE"))
    rows += [(f.kind, f.name, f.package, f.value) for f in found.installed()]
    width = max(len(r[1]) for r in rows)
    for kind, name, package, value in sorted(rows, key=lambda r: (r[0], r[2] != "built-in", r[1])):
        click.echo(f"{kind:16} {name:{width}}  {package:24} {value}")
