"""Stamps folded into windows: error kinds stay bounded."""

from pusher_farm.core.recorder import OTHER_KINDS, Recorder
from pusher_farm.core.window import MAX_ERROR_KINDS, Window


def test_error_kinds_past_the_bound_are_counted_as_other_kinds():
    windows: list[Window] = []
    recorder = Recorder(1.0, windows.append)
    recorder.t0 = 0.0
    for i in range(MAX_ERROR_KINDS + 500):
        recorder.failed(0.1, 0.1, 0.2, f"HTTP {i}")  # a target naming errors after something unbounded
    recorder.flush(0.5, final=True)
    recorder.failed(0.6, 0.6, 0.7, "HTTP 0")  # a kind already seen keeps its name
    recorder.failed(0.6, 0.6, 0.7, "brand new")
    recorder.flush(0.8, final=True)
    errors = windows[0].errors
    assert len(errors) == MAX_ERROR_KINDS and errors[OTHER_KINDS] == 501
    assert sum(errors.values()) == windows[0].failed == MAX_ERROR_KINDS + 500
    late = windows[-1].errors
    assert late["HTTP 0"] == 1 and late[OTHER_KINDS] == 1
    # Every window stays within what a coordinator accepts from a peer.
    for w in windows:
        assert Window.from_wire(w.to_wire()).errors == w.errors
