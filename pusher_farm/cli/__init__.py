"""The ``farm`` command: thin click wrappers over the library.

Usage errors print one line (``farm: error: ...``) and exit with status 2, before any load.
"""

from __future__ import annotations

import os
import sys

import click

from pusher_farm.cli.agents import agent, keys
from pusher_farm.cli.common import EXIT_USAGE, Usage
from pusher_farm.cli.demos import demo
from pusher_farm.cli.load import coordinator, run
from pusher_farm.cli.plugin_names import plugins
from pusher_farm.cli.saved_reports import report
from pusher_farm.errors import PusherError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pusher-farm")
def cli() -> None:
    """pusher-farm: exact open-loop load from one laptop to many hosts."""


for _command in (run, coordinator, agent, keys, demo, plugins, report):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``farm`` script: one-line errors, exit status 2 for bad usage."""
    # Targets named package.module:function are looked up from the current directory first,
    # as with `python -m` (the installed script's own folder is what Python puts there).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        # every option also reads FARM_<COMMAND>_<OPTION> (e.g. FARM_RUN_RPS=500)
        cli.main(args=argv, prog_name="farm", standalone_mode=False, auto_envvar_prefix="FARM")
    except click.exceptions.Abort:
        click.echo("farm: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "farm"
        click.echo(f"{command}: error: {exc.format_message()} (see {command} --help)", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"farm: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (Usage, PusherError) as exc:
        click.echo(f"farm: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
