"""A scenario's load model in a few words, as the report and the console say it."""

from __future__ import annotations

from pusher_farm.core.config import Config
from pusher_farm.core.schedule import Constant, Stages

__all__ = ["describe_run", "describe_users"]


def describe_run(cfg: Config) -> str:
    """The load model in a few words: the profile, or drain mode with its lanes and cap."""
    profile = cfg.profile
    if cfg.users is not None:
        return (f"from {cfg.start:g}s: " if cfg.start else "") + describe_users(cfg)
    if not cfg.parallel:
        if profile is None:
            return ""
        if cfg.start and len(profile.stages) > 1 and profile.stages[0].start == profile.stages[0].end == 0:
            after = profile.stages[1:]
            if len(after) == 1 and after[0].start == after[0].end:
                return f"from {cfg.start:g}s: {after[0].start:g} rps"
            return f"from {cfg.start:g}s: {Stages(after).describe()}"
        return profile.describe()
    return f"drain, {cfg.parallel} parallel" + (f", at most {profile.describe()}" if profile is not None else "")


def describe_users(cfg: Config) -> str:
    """A closed model in a few words: users (or their stages), think time, iterations."""
    users = cfg.users
    assert users is not None
    text = f"{users.stages[0].start:g} users" if isinstance(users, Constant) else f"users {users.describe()}"
    low, high = cfg.think
    if high:
        text += f", think {low * 1000:g}" + (f"-{high * 1000:g}" if high != low else "") + " ms"
    if cfg.iterations:
        text += f", {cfg.iterations} iterations each"
    return text
