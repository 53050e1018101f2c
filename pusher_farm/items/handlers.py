"""What happens to items as they finish: callbacks, failure handlers, the results file.

Each callback (``on_success``, ``on_retry``, ``on_failure``; several of each allowed) and each
file runs on a thread of its own (a ``Lane``), so a slow one never stalls the load: it is
called exactly once per event, in order. A lane's queue is bounded: a lane that falls
``_QUEUE`` events behind makes the run wait for it (the wait shows in the schedule lag) rather
than grow memory. A callback that raises is counted and the first errors are noted in the
report; the others go on.

Built-in failure handler: ``dead-letter`` (``DeadLetter(path)``) appends each failed item
(id, body, error, attempts, retries) as a JSON line. ``Results(path)`` writes one line per
finished item (id, status, attempts, result or error, latency, agent), like Gofherd's output.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any

from pusher_farm.errors import InvalidOption
from pusher_farm.items.item import Status, Work

__all__ = ["DeadLetter", "Handlers", "Lane", "Results"]

_QUEUE = 65_536
_ERRORS_NOTED = 5
_STOP = object()


class Lane:
    """One consumer on a thread of its own: ``fn(*args)`` for each ``put``, in order."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.fn = fn
        self.calls = 0
        self.errors = 0
        self.first_errors: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue(_QUEUE)
        self._thread = threading.Thread(target=self._run, name=f"items:{name}", daemon=True)
        self._thread.start()

    def put(self, *args: Any) -> None:
        self._queue.put(args)

    @property
    def backlog(self) -> int:
        """Events put and not yet handled (about: the queue's size)."""
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is _STOP:
                return
            try:
                self.fn(*args)
            except Exception as exc:  # a callback's failure is counted, never fatal
                self.errors += 1
                if len(self.first_errors) < _ERRORS_NOTED:
                    self.first_errors.append(f"{self.name}: {type(exc).__name__}: {exc}"[:300])
            finally:
                self.calls += 1

    def close(self, timeout: float | None = None) -> bool:
        """Finish every event put so far, then end; False if it did not within ``timeout``."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()


class _JsonLines:
    """A JSONL file opened for appending (checked when made)."""

    def __init__(self, path: str, what: str) -> None:
        try:
            self.file: IO[str] = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise InvalidOption(f"cannot write the {what} file {path!r}: {exc.strerror or exc}") from None
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, default=repr) + "\n")

    def close(self) -> None:
        self.file.close()


class DeadLetter(_JsonLines):
    """The built-in failure handler: each failed item as one JSON line."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "dead-letter")

    def __call__(self, record: dict[str, Any]) -> None:
        self.write({k: record.get(k) for k in ("id", "body", "error", "attempts", "retries", "agent")})


class Results(_JsonLines):
    """One JSON line per finished item."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "results")

    def __call__(self, record: dict[str, Any]) -> None:
        self.write(record)


class Handlers:
    """Callbacks by event and the files, each on its own lane (see the module docstring).

    ``final(record, item)`` takes a finished item's record (``Work.record()`` plus its
    latency and agent) and, where the item lives in this process, the item itself for the
    callbacks; records from a farm's agents come without one (the callbacks get a ``Work``
    rebuilt from the record)."""

    def __init__(
        self,
        *,
        on_success: Iterable[Callable[[Work], Any]] = (),
        on_retry: Iterable[Callable[[Work], Any]] = (),
        on_failure: Iterable[Callable[[Work], Any]] = (),
        failure_records: Iterable[Callable[[dict[str, Any]], Any]] = (),
        results: str | None = None,
        dead_letter: str | None = None,
    ) -> None:
        self._files: list[_JsonLines] = []
        self._results = self._file(Results(results)) if results else None
        try:
            self._dead = self._file(DeadLetter(dead_letter)) if dead_letter else None
        except BaseException:
            for f in self._files:
                f.close()
            raise
        self.success = [Lane(_name(f, "on_success"), f) for f in on_success]
        self.retry = [Lane(_name(f, "on_retry"), f) for f in on_retry]
        self.failure = [Lane(_name(f, "on_failure"), f) for f in on_failure]
        self.failure_records = [Lane(_name(f, "failure handler"), f) for f in failure_records]
        if self._dead is not None:
            self.failure_records.append(Lane("dead-letter", self._dead))
        self.results = [Lane("results", self._results)] if self._results is not None else []

    def _file(self, f: _JsonLines) -> _JsonLines:
        self._files.append(f)
        return f

    @property
    def lanes(self) -> list[Lane]:
        return [*self.success, *self.retry, *self.failure, *self.failure_records, *self.results]

    def final(self, record: dict[str, Any], item: Work | None = None) -> None:
        for lane in self.results:
            lane.put(record)
        failed = record.get("status") == Status.FAILURE.value
        if failed:
            for lane in self.failure_records:
                lane.put(record)
        lanes = self.failure if failed else self.success
        if lanes:
            work = item if item is not None else _work_of(record)
            for lane in lanes:
                lane.put(work)

    def retried(self, item: Work) -> None:
        if self.retry:
            snapshot = copy.copy(item)
            snapshot.retries = list(item.retries)
            for lane in self.retry:
                lane.put(snapshot)

    def close(self, timeout: float = 30.0) -> list[str]:
        """Finish every lane and close the files; the notes for the report (callbacks that
        failed, lanes that did not finish)."""
        notes = []
        for lane in self.lanes:
            if not lane.close(timeout):
                notes.append(f"{lane.name} did not finish its events within {timeout:g} s")
            if lane.errors:
                notes.append(f"{lane.name} raised {lane.errors} times; first: " + "; ".join(lane.first_errors))
        for f in self._files:
            f.close()
        return notes

    def backlog(self) -> int:
        """The most events any lane has waiting (a slow callback or file falls behind)."""
        return max((lane.backlog for lane in self.lanes), default=0)

    def counts(self) -> dict[str, int]:
        """How many times each callback ran."""
        out: dict[str, int] = {}
        for lane in self.lanes:
            out[lane.name] = out.get(lane.name, 0) + lane.calls
        return out


def _name(fn: Callable[..., Any], what: str) -> str:
    return f"{what} {getattr(fn, '__qualname__', None) or type(fn).__name__}"


def _work_of(record: dict[str, Any]) -> Work:
    status = record.get("status")
    work = Work(str(record.get("id")), record.get("body"), record.get("result"))
    work.status = Status(status) if status in {s.value for s in Status} else None
    work.attempts = int(record.get("attempts") or 0)
    work.error = record.get("error")
    work.retries = list(record.get("retries") or [])
    return work
