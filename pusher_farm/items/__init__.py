"""Work items: what each call works on (``Work``), how it ended (``Status``), where items come
from (feeds), what a call's outcome makes of its item (the desk: retries) and what happens to
finished ones (handlers: callbacks, results and dead-letter files).

Knows nothing of the executor or the farm: the executor takes a desk, the farm hands items
to its agents' desks.
"""
