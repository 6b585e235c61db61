"""The scoring half of the worker, in a process of its own, and its supervision.

Faust's per-message machinery and the scoring code are both Python; in one process they take
turns on one interpreter lock. So the Faust process only consumes, publishes and acknowledges,
and this child owns ClickHouse (the embedded engine serves one process per directory), the model,
the feature cache and the processors. The child gets its settings at start, ignores SIGINT and
SIGTERM (the Faust process owns shutdown), leaves on its own when its parent is gone, and is
restarted when it dies: calls in flight fail with :class:`ScoringProcessRestarted`, which the
caller retries (nothing was acknowledged). More than ``max_restarts`` deaths within
``restart_window`` seconds is :class:`ScoringProcessFailed`: the worker ends, non-zero.

The child runs one call at a time, in the order given.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from stream.messages import BatchOutcome, BatchRequest, ModelStatus

if TYPE_CHECKING:
    from stream.service import ScoringService

log = logging.getLogger(__name__)


class ScoringProcessRestarted(Exception):  # noqa: N818 - a state the caller retries
    """The scoring process died and a new one took over; the call may be made again."""


class ScoringProcessFailed(Exception):
    """The scoring process keeps dying (or cannot start again): the worker must end."""


# -- in the scoring process ------------------------------------------------------------------

_service: ScoringService | None = None  # the one service of this process, built by _start


def _watch_parent(parent: int) -> None:
    while True:  # a parent killed with SIGKILL cannot shut the pool down: leave on our own
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(1.0)


def _initialise(parent: int) -> None:
    from stream.memory import limit_heap_growth

    limit_heap_growth()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _start(overrides: dict) -> tuple[int, ModelStatus]:
    global _service
    from shared.settings import load_settings
    from stream.service import ScoringService

    _service = ScoringService(load_settings(**overrides))
    return os.getpid(), _service.status()


def _process(request: BatchRequest) -> BatchOutcome:
    assert _service is not None
    started = time.time()
    outcome = _service.process(request)
    outcome.started_at, outcome.finished_at = started, time.time()
    return outcome


def _refresh() -> tuple[str | None, ModelStatus]:
    assert _service is not None
    return _service.refresh()


def _ping() -> None:
    assert _service is not None
    _service.ping()


# -- in the Faust process ----------------------------------------------------------------------

class ScoringProcess:
    def __init__(self, overrides: dict | None = None, max_restarts: int = 3,
                 restart_window: float = 600.0) -> None:
        self.overrides = dict(overrides or {})
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.status: ModelStatus | None = None
        self.pid: int | None = None
        self.restarts: list[float] = []   # monotonic times of restarts
        self.failed: str | None = None    # why it could not be kept alive
        self._pool: ProcessPoolExecutor | None = None
        self._restarting: asyncio.Future | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        """A one-process pool whose process is up and built (blocking: model load, ClickHouse)."""
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        pool = ProcessPoolExecutor(1, mp_context=context, initializer=_initialise,
                                   initargs=(os.getpid(),))
        try:
            self.pid, self.status = pool.submit(_start, self.overrides).result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    def start(self) -> ModelStatus:
        """At startup: errors (no model, bad settings, ClickHouse down) surface to the caller."""
        self._pool = self._new_pool()
        assert self.status is not None
        return self.status

    async def _call(self, func, *args: Any) -> Any:  # noqa: ANN001
        if self.failed:
            raise ScoringProcessFailed(self.failed)
        if self._restarting is not None:
            await asyncio.shield(self._restarting)
        pool = self._pool
        assert pool is not None, "start() first"
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, func, *args)
        except BrokenProcessPool as exc:
            await self._restart(pool)
            raise ScoringProcessRestarted(f"the scoring process died ({exc}); restarted") from exc

    async def _restart(self, broken: ProcessPoolExecutor) -> None:
        if self._restarting is not None:
            await asyncio.shield(self._restarting)
            return
        if broken is not self._pool:
            return  # already replaced
        loop = asyncio.get_running_loop()
        self._restarting = loop.create_future()
        try:
            broken.shutdown(wait=False, cancel_futures=True)
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < self.restart_window] + [now]
            if len(self.restarts) > self.max_restarts:
                self.failed = (f"the scoring process died {len(self.restarts)} times within "
                               f"{self.restart_window:.0f}s")
                raise ScoringProcessFailed(self.failed)
            log.error("the scoring process (pid %s) died; starting a new one", self.pid)
            try:
                self._pool = await loop.run_in_executor(None, self._new_pool)
            except Exception as exc:
                self.failed = f"the scoring process could not be restarted: {type(exc).__name__}: {exc}"
                raise ScoringProcessFailed(self.failed) from exc
            log.info("scoring process restarted (pid %s)", self.pid)
        finally:
            self._restarting.set_result(None)
            self._restarting = None

    async def process(self, request: BatchRequest) -> BatchOutcome:
        return await self._call(_process, request)

    async def refresh(self) -> str | None:
        version, self.status = await self._call(_refresh)
        return version

    async def ping(self) -> None:
        await self._call(_ping)

    def stop(self, grace: float = 2.0) -> None:
        """Unfinished calls stay unanswered (their batches unacknowledged). The child, which
        ignores SIGTERM, is killed if it has not left after ``grace`` seconds."""
        pool, pid = self._pool, self.pid
        self._pool = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if pid is None:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
