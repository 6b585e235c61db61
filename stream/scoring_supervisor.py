"""The scoring process as the Faust process sees it: started, called, supervised.

Faust's per-message machinery and the scoring code are both Python; in one process they take
turns on one interpreter lock. So the Faust process only consumes, publishes and acknowledges,
and a child process (:mod:`stream.scoring`) owns ClickHouse (the embedded engine serves one
process per directory), the model, the feature cache and the processors. The child gets its
settings at start and is restarted when it dies: calls in flight fail with
:class:`~stream.boundary.ScoringProcessRestarted`, which the caller retries (nothing was
acknowledged). More than ``max_restarts`` deaths within ``restart_window`` seconds is
:class:`ScoringProcessFailed`: the worker ends, non-zero.

Requests and answers cross one pipe that the parent's event loop reads itself (``add_reader``):
no executor threads between the loop and the child, so an answer is not left waiting for the
interpreter lock behind Faust's consumer thread. The child answers one call at a time, in the
order given; a closed pipe is how either side learns that the other is gone.

Read-API queries take a second pipe, served in the child by a few threads of their own (each
with its own ClickHouse client): a read never waits behind a micro-batch and a micro-batch never
waits behind a read. At most ``max_reads`` are in flight (:class:`ReadsBusy` beyond: the view's 429),
each for at most ``read_timeout`` seconds (:class:`ReadTimedOut`: its 503).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from stream.boundary import (
    Housekeeping,
    ModelStatus,
    ReadRequest,
    ScoringOutcome,
    ScoringProcessRestarted,
    ScoringRequest,
)

log = logging.getLogger(__name__)


class ScoringProcessFailed(Exception):
    """The scoring process keeps dying (or cannot start again): the worker must end."""


class ReadsBusy(Exception):  # noqa: N818 - a state: the client may come back
    """As many reads are in flight as allowed."""


class ReadTimedOut(Exception):  # noqa: N818
    """The read took longer than its limit."""


class _ChildGone(Exception):
    pass


def _reap(process: subprocess.Popen, timeout: float) -> bool:
    """True when the process has ended within ``timeout`` seconds (and is reaped)."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


@dataclass
class _Child:
    process: subprocess.Popen
    calls: Connection            # batches and control calls, answered in order
    reads: Connection            # read-API queries, answered as they finish
    read_reader: bool = False    # the event loop reads ``reads`` already


# -- in the Faust process ----------------------------------------------------------------------

# Started as ``python -m`` this module: a plain child process rather than multiprocessing's,
# whose start methods that do not fork also start a resource-tracker process (12 MB resident)
# for semaphores and shared memory the worker never uses; and a process with threads is never
# forked. The child inherits the two pipes and nothing else.
CHILD_MODULE = "stream.scoring"


class ScoringProcess:
    """``service``: ``module:Class`` built in the child from its settings, with ``process``,
    ``housekeeping``, ``read`` and ``status`` (the real one, or a fake in tests)."""

    def __init__(self, overrides: dict | None = None, max_restarts: int = 3,
                 restart_window: float = 600.0,
                 service: str = "stream.scoring.service:ScoringService", max_reads: int = 4,
                 read_timeout: float = 5.0) -> None:
        self.overrides = dict(overrides or {})
        self.service = service
        self.max_reads = max_reads
        self.read_timeout = read_timeout
        self.reads_in_flight = 0
        self._read_calls = 0
        self._read_waiters: dict[int, asyncio.Future] = {}
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.status: ModelStatus | None = None
        self.pid: int | None = None
        self.restarts: list[float] = []   # monotonic times of restarts
        self.failed: str | None = None    # why it could not be kept alive
        self._child: _Child | None = None
        self._turn = asyncio.Lock()       # one call at a time: the child answers in order
        self._calls = 0                   # numbers calls, so an answer to a cancelled one is skipped

    def _new_child(self) -> _Child:
        """A child that is up and built (blocking: model load, ClickHouse)."""
        ours, theirs = multiprocessing.Pipe()
        our_reads, their_reads = multiprocessing.Pipe()
        inherited = (theirs.fileno(), their_reads.fileno())
        process = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, *map(str, inherited)],
                                   pass_fds=inherited)
        theirs.close()  # so that the child's death closes the pipes for us
        their_reads.close()
        try:
            ours.send_bytes(pickle.dumps((sys.path, (self.overrides, self.service, self.max_reads)),
                                         protocol=pickle.HIGHEST_PROTOCOL))
            state, value = ours.recv()
        except (EOFError, OSError):
            _reap(process, 5)
            ours.close()
            our_reads.close()
            raise RuntimeError(f"the scoring process exited during startup "
                               f"(exit code {process.returncode})") from None
        if state == "error":
            _reap(process, 5)
            ours.close()
            our_reads.close()
            raise value
        self.pid, self.status = value
        return _Child(process, ours, our_reads)

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
                state, value = await self._exchange(child.calls, (self._calls, name, args))
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

    async def _restart(self, dead: _Child) -> None:
        self._end(dead, grace=0.0)
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

    async def process(self, request: ScoringRequest) -> ScoringOutcome:
        return await self._call("process", request)

    async def housekeeping(self, due: frozenset[str]) -> Housekeeping:
        """The periodic work that is ``due`` (model reload, store ping, drift, decision
        figures), between two micro-batches."""
        report: Housekeeping = await self._call("housekeeping", due)
        self.status = report.model
        return report

    async def read(self, request: ReadRequest) -> bytes:
        """A read-API query, on the read pipe: never behind a micro-batch, never holding one up. The
        answer comes as JSON bytes, so this process passes it on without touching it."""
        if self.failed:
            raise ScoringProcessFailed(self.failed)
        if self.reads_in_flight >= self.max_reads:
            raise ReadsBusy(f"{self.reads_in_flight} reads in flight (AMLSCORE_API_MAX_CONCURRENT)")
        child = self._child
        assert child is not None, "start() first"
        loop = asyncio.get_running_loop()
        if not child.read_reader:
            loop.add_reader(child.reads.fileno(), self._read_answer, child)
            child.read_reader = True
        self._read_calls += 1
        number = self._read_calls
        answered = self._read_waiters[number] = loop.create_future()
        self.reads_in_flight += 1
        try:
            child.reads.send_bytes(pickle.dumps((number, request), protocol=pickle.HIGHEST_PROTOCOL))
            state, value = await asyncio.wait_for(answered, self.read_timeout)
        except TimeoutError:
            raise ReadTimedOut(f"no answer within {self.read_timeout:g}s") from None
        except OSError as exc:
            raise ScoringProcessRestarted(f"the scoring process is gone ({exc})") from exc
        finally:
            self.reads_in_flight -= 1
            self._read_waiters.pop(number, None)
        if state == "error":
            raise value
        return value

    def _read_answer(self, child: _Child) -> None:
        try:
            number, state, value = pickle.loads(child.reads.recv_bytes())
        except (EOFError, OSError) as exc:
            self._drop_read_reader(child)
            for waiter in self._read_waiters.values():
                if not waiter.done():
                    waiter.set_exception(ScoringProcessRestarted(f"the scoring process died ({exc!r})"))
            return
        waiter = self._read_waiters.get(number)
        if waiter is not None and not waiter.done():  # else: its caller has given up
            waiter.set_result((state, value))

    @staticmethod
    def _drop_read_reader(child: _Child) -> None:
        if child.read_reader:
            child.read_reader = False
            try:
                asyncio.get_running_loop().remove_reader(child.reads.fileno())
            except (RuntimeError, ValueError, OSError):
                pass

    def stop(self, grace: float = 2.0) -> None:
        """Unfinished calls stay unanswered (their batches unacknowledged). The child, which
        ignores SIGTERM, leaves when its pipes close; it is killed if still there after
        ``grace`` seconds (e.g. in the middle of a long batch)."""
        child, self._child = self._child, None
        if child is not None:
            self._end(child, grace=grace)

    def _end(self, child: _Child, grace: float) -> None:
        self._drop_read_reader(child)
        for waiter in self._read_waiters.values():  # reads of this child get no answer now
            if not waiter.done():
                waiter.set_exception(ScoringProcessRestarted("the scoring process was replaced"))
        try:
            asyncio.get_running_loop().remove_reader(child.calls.fileno())
        except (RuntimeError, ValueError, OSError):
            pass  # no loop here, or the pipe is already closed
        child.calls.close()
        child.reads.close()
        if not _reap(child.process, grace):
            child.process.kill()
            _reap(child.process, 5)
