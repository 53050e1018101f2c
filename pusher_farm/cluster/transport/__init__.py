"""Moving frames: the seam (``seam``: a hub and its links), ZeroMQ with CURVE (``zeromq``,
``security``) and the in-process network tests drive on a fake clock (``inproc``)."""
