"""A scenario's load model: ``Open`` (a rate), ``Closed`` (users looping on the target) or
``Drain`` (lanes working through a feed of items). See ``model`` for the questions each
answers; the coordinator, the agent and the executor ask them and never branch on the kind."""

from pusher_farm.core.load.closed import Closed
from pusher_farm.core.load.drain import Drain
from pusher_farm.core.load.model import Load, load_from_wire
from pusher_farm.core.load.open import Open

__all__ = ["Closed", "Drain", "Load", "Open", "load_from_wire"]
