"""Targets by name: the built-ins (``noop``, ``sleep``, ``http``) and ``package.module:attr``.

A target is a callable taking a ``Context``. A ``Plugin`` is a target factory with declared
parameters (``--param k=v`` on the command line); a module attribute may be either. Nothing
here ever runs code that arrived from elsewhere: a name is resolved by importing it on this
host.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pusher_farm.errors import InvalidOption, MissingTarget, PusherError

if TYPE_CHECKING:
    from pusher_farm.core.run import Run

__all__ = ["Param", "Plugin", "builtin_names", "check_run", "import_attr", "resolve", "spec_of"]


@dataclass(frozen=True)
class Param:
    """One parameter of a plugin: its type checks and converts what is given (text from the
    command line, or a value from Python), raising ValueError or TypeError for nonsense."""

    type: Callable[[str], Any]
    default: Any = None
    help: str = ""
    required: bool = False
    multiple: bool = False


@dataclass(frozen=True)
class Plugin:
    """A target factory with declared parameters; ``make(**params)`` returns the target."""

    name: str
    make: Callable[..., Callable[..., Any]]
    params: Mapping[str, Param] = field(default_factory=dict)
    help: str = ""
    #: what the target needs of its scenario beyond its parameters: ``check(params, has_feed)``
    #: raises ``InvalidOption`` (the http target's ``{field}`` placeholders need a feed)
    check: Callable[[Mapping[str, Any], bool], None] | None = None

    def build(self, params: Mapping[str, Any]) -> Callable[..., Any]:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            known = ", ".join(sorted(self.params)) or "none"
            raise InvalidOption(f"target {self.name!r} has no parameter {unknown[0]!r} (it takes: {known})")
        values: dict[str, Any] = {}
        for key, spec in self.params.items():
            if key in params:
                raw = params[key]
                try:  # every value is checked by its type, text or not (a Python caller's too)
                    if spec.multiple:
                        items = raw if isinstance(raw, list) else [raw]
                        values[key] = [spec.type(v) for v in items]
                    else:
                        values[key] = spec.type(raw)
                except (TypeError, ValueError) as exc:
                    raise InvalidOption(f"parameter {key}={raw!r} of target {self.name!r}: {exc}") from None
            elif spec.required:
                raise InvalidOption(f"target {self.name!r} needs the parameter {key!r} ({spec.help})")
            else:
                values[key] = spec.default
        target = self.make(**values)
        if not hasattr(target, "__pusher_name__"):
            _tag(target, "__pusher_name__", self.name)
        return target


def builtin_names() -> list[str]:
    return sorted(_builtins())


def _builtins() -> dict[str, Plugin]:
    from pusher_farm.targets.basic import NOOP, SLEEP
    from pusher_farm.targets.http import HTTP

    return {p.name: p for p in (NOOP, SLEEP, HTTP)}


def resolve(spec: str, params: Mapping[str, Any] | None = None) -> Callable[..., Any]:
    """The target named ``spec`` (a built-in or ``package.module:attr``), built with ``params``."""
    params = dict(params or {})
    target = _resolve(spec, params)
    # How to build this target again elsewhere: farm agents resolve the same name themselves.
    _tag(target, "__pusher_spec__", (spec, params))
    return target


def check_run(run: Run, *, here: bool) -> None:
    """Build every scenario's target on this host first, so one that cannot run is one line
    before any load: a built-in always, any other when ``here`` (the run's agents run on this
    host); each target's own rules too. A ``ScenarioError`` names the scenario."""
    from pusher_farm.core import loop as _loop
    from pusher_farm.core.scenario import ScenarioError

    for c in run:
        if c.target is None or not (here or c.target in _builtins()):
            continue
        try:
            fn = resolve(c.target, dict(c.params))
            plugin = _builtins().get(c.target)
            if plugin is not None and plugin.check is not None:
                plugin.check(dict(c.params), c.feed is not None)
        except PusherError as exc:
            raise ScenarioError(c.name, "target", str(exc)) from None
        aclose = getattr(fn, "aclose", None)
        if aclose is not None:
            _loop.run(aclose())


def _tag(target: Any, attr: str, value: Any) -> None:
    try:
        setattr(target, attr, value)
    except (AttributeError, TypeError):
        pass


def spec_of(target: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """(name, params) an agent on another process can resolve to the same target.

    Raises ``MissingTarget`` for what no other process can import (lambdas, nested functions,
    functions of the ``__main__`` script).
    """
    spec = getattr(target, "__pusher_spec__", None)
    if spec is not None:
        return spec[0], dict(spec[1])
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if module is None or qualname is None:
        raise MissingTarget(
            f"{target!r} has no module path: farm agents import targets by name, so give a function "
            "defined at the top level of an importable module"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise MissingTarget(
            f"{module}:{qualname} is a lambda or a nested function, which other processes cannot import: "
            "define it at the top level of a module"
        )
    if module == "__main__":
        raise MissingTarget(
            f"{qualname} is defined in the script being run (__main__), which agents would re-run on import: "
            "move it into a module of its own and import it"
        )
    name = f"{module}:{qualname}"
    try:
        resolved = _resolve(name, {})
    except PusherError as exc:
        raise MissingTarget(f"{name} cannot be imported by path: {exc.reason}") from None
    if resolved is not target and getattr(resolved, "__wrapped__", None) is not target:
        raise MissingTarget(f"{name} does not name this target when imported")
    return name, {}


def import_attr(spec: str, what: str = "target") -> Any:
    """The object ``package.module:attr`` names, imported on this host; ``MissingTarget``
    saying what is wrong (``what`` names it in the message: a target, a gossip listener...)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise MissingTarget(f"{what} {spec!r} must be named package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingTarget(f"cannot import module {module_name!r} for {what} {spec!r}: {exc}") from None
    except Exception as exc:  # the module itself raised while importing
        raise MissingTarget(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise MissingTarget(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _resolve(spec: str, params: dict[str, Any]) -> Callable[..., Any]:
    from pusher_farm import plugins

    builtins = _builtins()
    if spec in builtins:
        return builtins[spec].build(params)
    if ":" not in spec:
        obj = plugins.load("target", spec)
        if obj is None:
            known = [*sorted(builtins), *sorted(plugins.find("target"))]
            raise MissingTarget(
                f"{spec!r} is neither a target name ({', '.join(known)}; `farm plugins` lists where each comes "
                "from) nor package.module:function"
            )
        return _built(spec, obj, params)
    if spec.count(":") != 1 or spec.startswith(":") or spec.endswith(":"):
        raise MissingTarget(f"{spec!r} is neither a target name nor package.module:function")
    return _built(spec, import_attr(spec), params)


def _built(spec: str, obj: Any, params: dict[str, Any]) -> Callable[..., Any]:
    if isinstance(obj, Plugin):
        return obj.build(params)
    if params:
        raise InvalidOption(
            f"target {spec!r} takes no parameters (make it a pusher_farm.targets.Plugin to accept --param)"
        )
    if not callable(obj):
        raise MissingTarget(f"{spec!r} is not callable")
    _tag(obj, "__pusher_name__", spec)
    return obj
