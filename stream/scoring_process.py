"""The scoring half of the worker, in a process of its own, and its supervision.

Faust's per-message machinery and the scoring code are both Python; in one process they take
turns on one interpreter lock. So the Faust process only consumes, publishes and acknowledges,
and this child owns ClickHouse (the embedded engine serves one process per directory), the model,
the feature cache and the processors. The child gets its settings at start, ignores SIGINT and
SIGTERM (the Faust process owns shutdown), leaves when its pipe to the parent closes, and is
restarted when it dies: calls in flight fail with :class:`ScoringProcessRestarted`, which the
caller retries (nothing was acknowledged). More than ``max_restarts`` deaths within
``restart_window`` seconds is :class:`ScoringProcessFailed`: the worker ends, non-zero.

Requests and answers cross one pipe that the parent's event loop reads itself (``add_reader``):
no executor threads between the loop and the child, so an answer is not left waiting for the
interpreter lock behind Faust's consumer thread. The child answers one call at a time, in the
order given; a closed pipe is how either side learns that the other is gone.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from shared.read_api import ReadRequest
from stream.messages import BatchOutcome, BatchRequest, ModelStatus

log = logging.getLogger(__name__)


class ScoringProcessRestarted(Exception):  # noqa: N818 - a state the caller retries
    """The scoring process died and a new one took over; the call may be made again."""


class ScoringProcessFailed(Exception):
    """The scoring process keeps dying (or cannot start again): the worker must end."""


class _ChildGone(Exception):
    pass


# -- in the scoring process ------------------------------------------------------------------

def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _child_main(conn: Connection, overrides: dict, service_path: str) -> None:
    from shared.settings import load_settings
    from stream.memory import limit_heap_growth

    limit_heap_growth()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        module, _, name = service_path.partition(":")
        service = getattr(importlib.import_module(module), name)(load_settings(**overrides))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", _portable(exc)))
        return
    conn.send(("ok", (os.getpid(), service.status())))
    calls = {"process": _timed(service.process), "refresh": service.refresh, "ping": service.ping,
             "read": service.read}
    while True:
        try:
            number, name, args = conn.recv()
        except EOFError:  # the parent is gone (or stopped us): nothing more to do
            return
        try:
            answer = (number, "ok", calls[name](*args))
        except Exception as exc:  # noqa: BLE001 - the caller decides what an error means
            answer = (number, "error", _portable(exc))
        conn.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


def _timed(process):  # noqa: ANN001, ANN202
    def timed(request: BatchRequest) -> BatchOutcome:
        started = time.time()
        outcome = process(request)
        outcome.started_at, outcome.finished_at = started, time.time()
        return outcome
    return timed


# -- in the Faust process ----------------------------------------------------------------------

class ScoringProcess:
    """``service``: ``module:Class`` built in the child from its settings, with ``process``,
    ``refresh``, ``ping``, ``read`` and ``status`` (the real one, or a fake in tests)."""

    def __init__(self, overrides: dict | None = None, max_restarts: int = 3,
                 restart_window: float = 600.0,
                 service: str = "stream.service:ScoringService") -> None:
        self.overrides = dict(overrides or {})
        self.service = service
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.status: ModelStatus | None = None
        self.pid: int | None = None
        self.restarts: list[float] = []   # monotonic times of restarts
        self.failed: str | None = None    # why it could not be kept alive
        self._child: tuple[BaseProcess, Connection] | None = None
        self._turn = asyncio.Lock()       # one call at a time: the child answers in order
        self._calls = 0                   # numbers calls, so an answer to a cancelled one is skipped

    def _new_child(self) -> tuple[BaseProcess, Connection]:
        """A child that is up and built (blocking: model load, ClickHouse)."""
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        ours, theirs = context.Pipe()
        process = context.Process(target=_child_main, args=(theirs, self.overrides, self.service),
                                  name="amlscore-scoring", daemon=True)
        process.start()
        theirs.close()  # so that the child's death closes the pipe for us
        try:
            state, value = ours.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(f"the scoring process exited during startup "
                               f"(exit code {process.exitcode})") from None
        if state == "error":
            process.join(5)
            ours.close()
            raise value
        self.pid, self.status = value
        return process, ours

    def start(self) -> ModelStatus:
        """At startup: errors (no model, bad settings, ClickHouse down) surface to the caller."""
        self._child = self._new_child()
        assert self.status is not None
        return self.status

    async def _call(self, name: str, *args: Any) -> Any:
        if self.failed:
            raise ScoringProcessFailed(self.failed)
        async with self._turn:  # a restart happens inside the turn: later calls get the new child
            child = self._child
            assert child is not None, "start() first"
            self._calls += 1
            try:
                state, value = await self._exchange(child[1], (self._calls, name, args))
            except _ChildGone as exc:
                await self._restart(child)
                raise ScoringProcessRestarted(f"the scoring process died ({exc}); restarted") from exc
        if state == "error":
            raise value
        return value

    @staticmethod
    async def _exchange(conn: Connection, message: tuple) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[tuple[str, Any]] = loop.create_future()

        def readable() -> None:
            try:
                number, state, value = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError) as exc:
                loop.remove_reader(conn.fileno())
                answered.set_exception(_ChildGone(type(exc).__name__))
                return
            if number == message[0]:  # else: the late answer to a cancelled call
                loop.remove_reader(conn.fileno())
                answered.set_result((state, value))

        try:
            # The child is idle between calls, so it drains the pipe while we write.
            conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            raise _ChildGone(type(exc).__name__) from exc
        loop.add_reader(conn.fileno(), readable)
        try:
            return await answered
        finally:
            if not answered.done():  # cancelled: the answer will be read by nobody
                loop.remove_reader(conn.fileno())

    async def _restart(self, dead: tuple[BaseProcess, Connection]) -> None:
        _end(*dead, grace=0.0)
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < self.restart_window] + [now]
        if len(self.restarts) > self.max_restarts:
            self.failed = (f"the scoring process died {len(self.restarts)} times within "
                           f"{self.restart_window:.0f}s")
            raise ScoringProcessFailed(self.failed)
        log.error("the scoring process (pid %s) died; starting a new one", self.pid)
        try:
            self._child = await asyncio.get_running_loop().run_in_executor(None, self._new_child)
        except Exception as exc:
            self.failed = f"the scoring process could not be restarted: {type(exc).__name__}: {exc}"
            raise ScoringProcessFailed(self.failed) from exc
        log.info("scoring process restarted (pid %s)", self.pid)

    async def process(self, request: BatchRequest) -> BatchOutcome:
        return await self._call("process", request)

    async def refresh(self) -> str | None:
        version, self.status = await self._call("refresh")
        return version

    async def ping(self) -> None:
        await self._call("ping")

    async def read(self, request: ReadRequest) -> dict:
        """The read API: served by the process that holds ClickHouse, between two batches."""
        return await self._call("read", request)

    def stop(self, grace: float = 2.0) -> None:
        """Unfinished calls stay unanswered (their batches unacknowledged). The child, which
        ignores SIGTERM, leaves when its pipe closes; it is killed if still there after
        ``grace`` seconds (e.g. in the middle of a long batch)."""
        child, self._child = self._child, None
        if child is not None:
            _end(*child, grace=grace)


def _end(process: BaseProcess, conn: Connection, grace: float) -> None:
    try:
        asyncio.get_running_loop().remove_reader(conn.fileno())
    except (RuntimeError, ValueError, OSError):
        pass  # no loop here, or the pipe is already closed
    conn.close()
    process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(5)
