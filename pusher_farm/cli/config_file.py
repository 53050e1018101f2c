"""``-c FILE``: a TOML file that says what a command line can say.

Each key is an option of the command (``rps = 500``, ``duration = "1m"``, ``feed =
"items.jsonl"``, ``drain = true``, ``header = ["X-A: 1"]``, ``target = "http"``); the table
``[params]`` holds the target's parameters (``--param k=v``). What the command line says wins,
then ``FARM_*`` environment variables, then the file, then the defaults (click's order). A key
the command does not know, or a value of the wrong type, is refused with the key's path and its
line in the file, before any load.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import click

from pusher_farm.cli.common import fail

__all__ = ["SCENARIOS", "config_option", "load_config"]

#: where the file's [[scenario]] tables wait for the command (``ctx.meta``), and the target the
#: command then sees
SCENARIOS = "@scenarios"

#: the options a file cannot set (they name the file, or belong to one invocation)
_NOT_IN_FILE = {"config", "show_config", "help"}


def _line_of(text: str, path: list[str]) -> int | None:
    """The line where the key ``path`` is set (best effort: tables and dotted keys)."""
    table: list[str] = []
    key = path[-1]
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]$", stripped)
        if header:
            table = [part.strip().strip('"') for part in header.group(1).split(".")]
            continue
        m = re.match(r'^("?)([A-Za-z0-9_\-.]+)\1\s*=', stripped)
        if m and table + m.group(2).split(".") == path:
            return number
        if m and m.group(2) == key and table == path[:-1]:
            return number
    return None


def _kind(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if param.multiple:
        return "list"
    if isinstance(param.type, (click.types.IntParamType,)):
        return "int"
    if isinstance(param.type, (click.types.FloatParamType,)):
        return "number"
    return "text"


def _checked(name: str, value: Any, kind: str) -> Any:
    """``value`` as the option takes it, or the reason it cannot be."""
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind == "list":
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError("must be a list of texts")
        return [str(v) for v in values]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be {'a number' if kind in ('int', 'number') else 'text or a number'}")
    if kind == "int" and not isinstance(value, int):
        raise ValueError("must be a whole number")
    if kind == "number" and not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value if kind in ("int", "number") else str(value)


def load_config(ctx: click.Context, path: str) -> dict[str, Any]:
    """The command's option values the file at ``path`` sets (checked; exit 2 with the key's
    line when one is not valid)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read the config file {path!r}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"{path} is not TOML: it is not UTF-8 text")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        fail(f"{path} is not TOML: {exc}")
    params = {p.name: p for p in ctx.command.params if p.name and p.name not in _NOT_IN_FILE}
    aliases = {name.replace("_", "-"): name for name in params}
    # the option names as a command line spells them: --header sets 'headers', --param 'params'
    for p in ctx.command.params:
        if isinstance(p, click.Option):
            for opt in p.opts:
                if opt.startswith("--"):
                    aliases[opt[2:]] = p.name  # type: ignore[assignment]
    out: dict[str, Any] = {}
    if "scenario" in data:
        tables = data.pop("scenario")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            fail(f"{path} line {_line_of(text, ['scenario']) or '?'}: scenarios are [[scenario]] tables")
        if "target" in data:
            fail(f"{path} line {_line_of(text, ['target']) or '?'}: a file of [[scenario]] tables gives each its "
                 "target, not one at the top")  # fmt: skip
        for key in ("rps", "stages", "users", "think", "iterations", "drain", "feed"):
            if key in data:
                fail(f"{path} line {_line_of(text, [key]) or '?'}: {key} belongs in each [[scenario]] table")
        ctx.meta[SCENARIOS] = (path, tables)
        out["target"] = SCENARIOS
    for key, value in data.items():
        where = f"{path} line {_line_of(text, [key]) or '?'}"
        if key == "params":
            if not isinstance(value, dict):
                fail(f"{where}: params must be a table of the target's parameters ([params] with k = v)")
            pairs = []
            for name, v in value.items():
                if isinstance(v, (dict, list)) or isinstance(v, bool):
                    v = str(v).lower() if isinstance(v, bool) else v
                if isinstance(v, (dict, list)):
                    fail(
                        f"{path} line {_line_of(text, ['params', name]) or '?'}: params.{name} must be text or a number"
                    )
                pairs.append(f"{name}={v}")
            out["params"] = pairs
            continue
        name = aliases.get(key) or aliases.get(key.replace("_", "-"))
        if name is None or name not in params:
            known = ", ".join(sorted({k for k in aliases if "_" not in k and k not in _NOT_IN_FILE}))
            fail(f"{where}: unknown key {key!r} (keys are the options of `farm {ctx.command.name}`: {known})")
        if name == "target":
            if not isinstance(value, str) or not value:
                fail(f'{where}: target must be a name, e.g. "http" or "package.module:function"')
            out[name] = value
            continue
        try:
            out[name] = _checked(name, value, _kind(params[name]))
        except ValueError as exc:
            fail(f"{where}: {key} {exc}, got {value!r}")
    return out


def _apply(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **load_config(ctx, value)}
    return value


def config_option() -> Any:
    return click.option(
        "-c",
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_apply,
        help="A TOML file of options (keys as on the command line, [params] for --param); flags override it.",
    )
