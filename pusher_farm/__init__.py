"""pusher-farm: exact open-loop load, from one laptop to fifty hosts.

The whole public API is re-exported here (``__all__``); everything else is internal.
"""

from pusher_farm._version import __version__ as __version__
from pusher_farm.core.calls import Context, inline
from pusher_farm.core.config import Config
from pusher_farm.core.gossip import Gossip, Gossiper, GossipStream, When
from pusher_farm.core.load import Closed, Drain, Open
from pusher_farm.core.offers import (
    Offer,
    with_batch,
    with_gossips,
    with_items,
    with_overtime,
    with_profile,
    with_spin,
    with_timeout,
    with_users,
    with_window,
)
from pusher_farm.core.results import (
    AgentSummary,
    Counts,
    EpochSummary,
    NameSummary,
    Report,
    ScenarioSummary,
    WorkerSummary,
)
from pusher_farm.core.scenario import Scenario
from pusher_farm.core.schedule import Constant, Stage, Stages, parse_duration, parse_stages
from pusher_farm.core.stats import Histogram
from pusher_farm.core.worker import Worker, hire
from pusher_farm.errors import (
    FarmError,
    InvalidOption,
    InvalidOvertime,
    InvalidRPS,
    MissingTarget,
    ProtocolError,
    PusherError,
    TargetError,
    WorkerBusy,
)
from pusher_farm.items.item import Retry, Status, Work
from pusher_farm.pusher import farm, farm_async, force, work

__all__ = [
    "AgentSummary",
    "Closed",
    "Config",
    "Constant",
    "Context",
    "Counts",
    "Drain",
    "EpochSummary",
    "FarmError",
    "Gossip",
    "GossipStream",
    "Gossiper",
    "Histogram",
    "InvalidOption",
    "InvalidOvertime",
    "InvalidRPS",
    "MissingTarget",
    "NameSummary",
    "Offer",
    "Open",
    "ProtocolError",
    "PusherError",
    "Report",
    "Retry",
    "Scenario",
    "ScenarioSummary",
    "Stage",
    "Stages",
    "Status",
    "TargetError",
    "When",
    "Work",
    "Worker",
    "WorkerBusy",
    "WorkerSummary",
    "farm",
    "farm_async",
    "force",
    "hire",
    "inline",
    "parse_duration",
    "parse_stages",
    "with_batch",
    "with_gossips",
    "with_items",
    "with_overtime",
    "with_profile",
    "with_spin",
    "with_timeout",
    "with_users",
    "with_window",
    "work",
]
