"""What every load model answers (k6's executors are the model: one type per way of making load,
and one scheduler that asks them the same questions).

A load model's ``profile`` is its count over time on the run's clock: calls per second (open),
users (closed) or lanes (drain); a scenario that starts later begins with a stage at 0. The
questions:

* how long it runs (``length``), when it begins, how it reads in a report (``describe``);
* what it asked for: calls requested by a time (``requested_until``) and the rate at a time;
* a farm's epochs: where an epoch at ``at_s`` starts for it (``epoch_slot``: the first global
  slot due then for a model of slots; members change hands at the instant itself);
* accounting: how many calls a process's plan asked of it (``planned``) and, on the
  coordinator, the slot below which the whole farm planned every slot (``planned_end``; None: a
  model of members planned the calls it started);
* a runtime change (rate, users, lanes) as a new model from one instant (``changed``): the same
  profile up to that instant, so switching to it at once moves nothing before it;
* work items an agent may hold at its share (``credit``), ``force``'s scaling, a cut;
* how it runs (``run``: its pacer on an executor), and its wire form.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pusher_farm.core.schedule import Profile, profile_from_stages
from pusher_farm.errors import InvalidOption, ProtocolError, PusherError

if TYPE_CHECKING:
    from pusher_farm.core.epochs import Plan
    from pusher_farm.core.executor import Executor

__all__ = ["Load", "load_from_wire", "members_at", "profile_wire"]


def members_at(count: float) -> int:
    """Members (users, lanes) at a point of a profile: the count rounded down (a hair under a
    whole number counts as it: float stages must not lose a member)."""
    return max(math.floor(count + 1e-9), 0)


def profile_wire(profile: Profile) -> list[list[float]]:
    """A profile as plain data: its stages ``[duration, from, to]``."""
    return [[s.duration, s.start, s.end] for s in profile.stages]


class Load:
    """A scenario's load model (see the module docstring). Subclasses are frozen records."""

    #: "open", "closed" or "drain": the report's word for it
    kind: ClassVar[str] = ""
    #: what a runtime change of this model takes (``PATCH /farm``)
    knobs: ClassVar[tuple[str, ...]] = ()
    #: its calls are the farm's global slots on a schedule (else members make them)
    slotted: ClassVar[bool] = False
    #: its calls start when a member is ready, so latency is service time
    closed_loop: ClassVar[bool] = True
    #: it works through a feed of items (it needs one)
    needs_items: ClassVar[bool] = False

    profile: Profile

    # -- what it is ---------------------------------------------------------------------------

    def length(self) -> float:
        """Seconds from the run's start to its end (``inf``: open-ended)."""
        return self.profile.duration

    @property
    def begins(self) -> float:
        """Seconds from the run's start before it makes any load."""
        return self.profile.begins

    def describe(self) -> str:
        """The model in a few words, as the report says it."""
        raise NotImplementedError

    def check(self, overtime: int, name: str) -> None:
        """Refuse what the scenario's cap on calls in flight per process makes impossible."""

    # -- what it asked for ----------------------------------------------------------------------

    @property
    def asks_rate(self) -> bool:
        """It asks for a rate (a threshold may compare the achieved rate with it)."""
        return False

    def requested_until(self, t: float) -> float:
        """Calls asked for from the start up to ``t`` seconds (0: a model of members asks
        for none: its output is what it reached)."""
        return 0.0

    def rate_at(self, t: float) -> float:
        """The rate asked for at ``t`` seconds from the start (0 for a closed model)."""
        return 0.0

    # -- epochs and accounting --------------------------------------------------------------------

    def epoch_slot(self, at_s: float, after: int = 0) -> int:
        """The first global slot of an epoch starting ``at_s`` seconds from the start, no
        earlier than ``after`` (the previous epoch's); 0 for a model of members."""
        return 0

    def planned(self, plan: Plan, reach: int | None, started: int, stopped_early: bool) -> int:
        """What a process's ``plan`` asked of it: the calls it started, for a model of members."""
        return started

    def planned_end(self, *, cut: bool, reaches: list[int], stop_s: float | None) -> int | None:
        """The global slot below which the farm planned every slot (None: a model of members,
        whose agents planned the calls they started)."""
        return None

    def members_at(self, t: float) -> int:
        """Members (users, lanes) the whole farm runs at ``t`` seconds from the start."""
        return members_at(self.profile.rate_at(t))

    # -- changes --------------------------------------------------------------------------------

    def changed(self, at_s: float, changes: Mapping[str, float]) -> Load:
        """This model with ``changes`` (its knobs) from ``at_s`` seconds on; ``InvalidOption``
        for a knob it does not have or a value out of bounds."""
        unknown = sorted(set(changes) - set(self.knobs))
        if unknown:
            takes = " or ".join(self.knobs) or "nothing"
            raise InvalidOption(f"{self.describe_kind()} changes {takes}, not {unknown[0]}")
        if not 0 < at_s < self.length():
            raise InvalidOption(f"the scenario ends at {self.length():g}s, before a change at {at_s:.2f}s")
        return self._changed(at_s, changes)

    def _changed(self, at_s: float, changes: Mapping[str, float]) -> Load:
        raise NotImplementedError

    def describe_kind(self) -> str:
        return {"open": "an open model (a rate)", "closed": "a closed model (users)",
                "drain": "a drain (lanes on items)"}.get(self.kind, self.kind)  # fmt: skip

    def credit(self, share: float) -> int:
        """Work items an agent with ``share`` of the farm wants to hold (before the farm's bounds)."""
        raise NotImplementedError

    def with_rate(self, rps: float) -> Load:
        """This model given ``work``'s ``rps`` (a drain: its rate cap; others have a load of
        their own and take none)."""
        raise InvalidOption(f"give either rps or {self.describe_kind()} (with_profile, ...), not both")

    def scaled(self, factor: float) -> Load:
        """``factor`` times the load (``force``: its amount of identical workers)."""
        raise NotImplementedError

    def cut(self, seconds: float | None) -> Load:
        """The load cut ``seconds`` from the start (None: as it is)."""
        raise NotImplementedError

    # -- running --------------------------------------------------------------------------------

    def run(self, executor: Executor) -> Coroutine[Any, Any, None]:
        """Its pacer on ``executor``: launch calls until the model, the plan or a stop says no more."""
        raise NotImplementedError

    # -- the wire ---------------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "profile": profile_wire(self.profile), **self._wire()}

    def plain(self) -> dict[str, Any]:
        """The model as the report's manifest has always said a plan's load (schema v1: fields
        are only added): ``profile`` (a rate's stages), ``until`` (its end), ``start``, and a
        closed model's ``users``, ``think``, ``iterations``, a drain's ``parallel``."""
        length = self.length()
        return {"start": self.begins, "until": None if math.isinf(length) else length, **self._plain()}

    def _plain(self) -> dict[str, Any]:
        return {}

    def _wire(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_wire(cls, profile: Profile, data: Mapping[str, Any]) -> Load:
        raise NotImplementedError


def load_from_wire(data: Any) -> Load:
    """The load model a plan carries (checked like any other); ``ProtocolError`` if not valid."""
    from pusher_farm.core.load.closed import Closed
    from pusher_farm.core.load.drain import Drain
    from pusher_farm.core.load.open import Open

    kinds: dict[str, type[Load]] = {"open": Open, "closed": Closed, "drain": Drain}
    if not isinstance(data, Mapping) or data.get("kind") not in kinds:
        raise ProtocolError(f"a load model is a map with a kind ({', '.join(kinds)})")
    try:
        profile = profile_from_stages(data.get("profile"))
        return kinds[data["kind"]]._from_wire(profile, data)
    except PusherError as exc:
        raise ProtocolError(f"bad load model: {exc.reason}") from None
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad load model: {exc}") from None
