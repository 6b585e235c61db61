"""A time limit on every ClickHouse call, whatever the engine does.

A server gets ``max_execution_time`` and socket timeouts; the embedded engine runs in this
process, and a call that waits on the engine forever (seen once: every thread parked, no CPU,
for 25 minutes) answers to no setting. So every client is a :class:`TimedClient`: each call is
registered while it runs, and a :class:`Deadline` watcher, when one is installed, hands the
first call that outlives the limit to ``on_overdue`` (a batch command prints one line naming it
and exits 1; the worker's own stall detection covers the stream)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

_running: dict[int, tuple[float, str]] = {}   # call number → (started, what)
_numbers = itertools.count()
_lock = threading.Lock()
CALLS = frozenset({"query", "query_df", "query_arrow", "query_np", "insert", "insert_df",
                   "insert_arrow", "command", "raw_query", "raw_insert"})


def describe(method: str, args: tuple, kwargs: dict) -> str:
    """The call in a few words: its SQL's start, or the table it writes."""
    first = args[0] if args else kwargs.get("query") or kwargs.get("table") or kwargs.get("cmd") or ""
    text = " ".join(str(first).split())
    return f"{method}: {text[:90]}{' …' if len(text) > 90 else ''}"


class TimedClient:
    """A clickhouse-connect client whose every call is registered while it runs."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in CALLS:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            number = next(_numbers)
            with _lock:
                _running[number] = (time.monotonic(), describe(name, args, kwargs))
            try:
                return attribute(*args, **kwargs)
            finally:
                with _lock:
                    _running.pop(number, None)
        return call


def oldest_call(now: float | None = None) -> tuple[float, str] | None:
    """(seconds it has run, what it is) of the longest-running call, if any."""
    with _lock:
        if not _running:
            return None
        started, what = min(_running.values())
    return (now if now is not None else time.monotonic()) - started, what


class Deadline:
    """Checks every ``interval`` s; the first call running longer than ``limit`` s goes to
    ``on_overdue(seconds, what)`` (once)."""

    def __init__(self, limit: float, on_overdue: Callable[[float, str], None],
                 interval: float = 1.0) -> None:
        self.limit, self.on_overdue, self.interval = limit, on_overdue, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="clickhouse-deadline", daemon=True)

    def start(self) -> Deadline:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(min(self.interval, self.limit / 4)):
            oldest = oldest_call()
            if oldest is not None and oldest[0] > self.limit:
                self.on_overdue(*oldest)
                return
