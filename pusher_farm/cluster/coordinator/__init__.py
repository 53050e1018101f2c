"""The coordinator: its state machine (``router``) over small parts (``membership`` and clock
sync, the ``planner`` and its ``books``, the windows' ``intake``, the items' ``dealing``), its
driver (``coordinator``), the ``aggregator`` that merges windows, the report's ``outcome`` and
the HTTP ``control`` side."""
