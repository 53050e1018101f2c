"""The HTTP side of a run (off by default, loopback by default, a token beyond it): the server
and its routes (``server``), what it publishes (``snapshot``: taken on the coordinator's
thread), and the runtime changes it takes (``changes``: ``PATCH /farm``, Gofherd's ``/herd``)."""
