"""When periodic work is due in the scoring process, and what that process last reported.

The pipeline's dispatcher is the only caller of the scoring process, so periodic work (model
reloads, store pings, drift, the decision figures) is asked for between two micro-batches, all
kinds that are due in one call. This module decides which kinds are due and keeps the answers;
the dispatcher makes the call. Plain asyncio on an injected clock, no I/O: tested without a
broker or a scoring process (tests/unit/stream/test_housekeeping.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stream.boundary import DECISIONS, DRIFT, MODEL, PING, Housekeeping
from stream.worker_metrics import WorkerMetrics


@dataclass(frozen=True)
class Intervals:
    """Seconds between two calls of each kind (a ping: idle that long, as the store last answered)."""

    model_poll: float
    ping: float
    drift: float
    decisions: float


@dataclass
class Observed:
    """What the scoring process last reported of itself (gauges, /ready, /drift read this)."""

    drift: dict = field(default_factory=dict)
    drift_at: float = 0.0                 # wall clock of ``drift``
    decisions: dict = field(default_factory=dict)


class HousekeepingSchedule:
    def __init__(self, intervals: Intervals, metrics: WorkerMetrics, wake: asyncio.Event,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``wake``: the dispatcher's wake event, set when /drift wants a fresher computation."""
        self.intervals, self.metrics, self.clock, self._wake = intervals, metrics, clock, wake
        self.observed = Observed()
        self._every = {MODEL: intervals.model_poll, DRIFT: intervals.drift, DECISIONS: intervals.decisions}
        now = clock()
        # Decisions are counted at once (the gauges start empty); the model and drift after one
        # interval (the model was loaded at start, drift needs scores first).
        self._due_at = {MODEL: now + intervals.model_poll, DRIFT: now + intervals.drift, DECISIONS: now}
        self._last_answer = now  # the store's last answer: a micro-batch written, or a ping
        self._drift_wanted = asyncio.Event()
        self._drift_done = asyncio.Event()

    def store_answered(self) -> float:
        """A micro-batch was just written: no ping is due for another interval. Returns now."""
        self._last_answer = self.clock()
        return self._last_answer

    def due(self) -> frozenset[str]:
        now = self.clock()
        due = {kind for kind, at in self._due_at.items() if now >= at}
        if self._drift_wanted.is_set():
            due.add(DRIFT)
        if now - self._last_answer >= self.intervals.ping:
            due.add(PING)
        return frozenset(due)

    def next_due(self) -> float:
        """The clock reading at which some kind is next due (the dispatcher sleeps until then)."""
        return min(*self._due_at.values(), self._last_answer + self.intervals.ping)

    def calling(self, due: frozenset[str]) -> None:
        """The call for ``due`` is being made: each interval starts again from now."""
        now = self.clock()
        for kind in due & self._every.keys():
            self._due_at[kind] = now + self._every[kind]

    def answered(self, report: Housekeeping, due: frozenset[str]) -> None:
        if PING in due:
            self.store_answered()  # it answered (or said why not) just now
        if report.model_loaded is not None:
            self.metrics.model_reloads.labels(result="loaded").inc()
        elif report.model_refused:
            self.metrics.model_reloads.labels(result="refused").inc()
        if report.drift is not None:
            self.observed.drift, self.observed.drift_at = report.drift, time.time()
            self._drift_wanted.clear()
            self._drift_done.set()
        if report.decisions is not None:
            self.observed.decisions = report.decisions
        self.metrics.shadow_totals(report.shadow)

    async def fresh_drift(self, max_age: float, timeout: float = 10.0) -> dict:
        """The drift figures, recomputed first when older than ``max_age`` seconds (however
        many callers ask at once, one computation)."""
        if time.time() - self.observed.drift_at > max_age:
            self._drift_done.clear()
            self._drift_wanted.set()
            self._wake.set()
            try:
                await asyncio.wait_for(self._drift_done.wait(), timeout)
            except TimeoutError:
                pass  # the last figures, however old (a long micro-batch is in the way)
        return self.observed.drift
