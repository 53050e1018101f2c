"""The distributed part: protocol, coordinator (state machine + ZeroMQ), agent, aggregator.

Knows nothing of click. ``pusher_farm.farm`` the package is shadowed at the top level by
``pusher_farm.farm`` the function (pusher's entry point); import from the modules here.
"""
