"""The agent: its state machine (``agent_state``) and actions, its driver and process
(``agent``), the runner that executes plans on the event loop (``runner``) and one run's work
items (``item_port``)."""
