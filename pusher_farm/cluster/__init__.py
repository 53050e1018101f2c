"""The distributed part: protocol, transports, the coordinator and agent state machines and
their drivers, the aggregator. Knows nothing of click; import from the modules here."""
