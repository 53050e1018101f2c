"""The farm's protocol: messages as checked msgpack maps (``messages``, ``fields``), the typed
records decoded from them once at the boundary (``records``), and one agent's plan (``plan``).
Knows nothing of sockets."""
