"""The scoring process's entry: it gets its settings at start, runs below the Faust process's CPU
priority (``stream.scoring.priority``), ignores SIGINT and SIGTERM (the Faust process owns
shutdown), answers calls one at a time in the order given on one pipe, answers read-API queries
on another from a few threads of its own, and leaves when its pipes close.
Started by :mod:`stream.scoring_supervisor` (the Faust process's side), which restarts it when it dies."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from shared.pandas_gate import keep_pandas_out
from stream.boundary import ScoringOutcome, ScoringRequest
from stream.memory import (
    arrow_buffers_from_malloc,
    freeze_startup_objects,
    limit_heap_growth,
    return_engine_memory_at_once,
)
from stream.scoring.priority import level_threads, lower_read_thread, lower_this_process

log = logging.getLogger(__name__)
# A ClickHouse call needs Python's lock several times on its way (the client's own code, and the
# embedded engine takes it back from its threads); with another thread busy in Python, each of
# those waits for the switch interval. Measured: a 100-row insert beside a busy Python thread
# took 40 ms at the default 5 ms interval, 8 ms at 1 ms, 4 ms at 0.2 ms (2 ms alone).
SWITCH_INTERVAL = 0.0002


def portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve_reads(conn: Connection, service: Any, threads: int) -> None:
    """Read requests, answered by a pool of their own as they finish (a thread of the process)."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="read", initializer=lower_read_thread)
    sending = threading.Lock()

    def reply(number: int, future: Future) -> None:
        try:
            answer = (number, "ok", future.result())
        except Exception as exc:  # noqa: BLE001 - the view turns it into a status
            answer = (number, "error", portable(exc))
        with sending:
            try:
                conn.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:
                pass  # the parent is gone

    while True:
        try:
            number, request = conn.recv()
        except (EOFError, OSError):
            return
        pool.submit(service.read, request).add_done_callback(functools.partial(reply, number))


def _timed(process):  # noqa: ANN001, ANN202
    def timed(request: ScoringRequest) -> ScoringOutcome:
        started = time.time()
        outcome = process(request)
        outcome.started_at, outcome.finished_at = started, time.time()
        return outcome
    return timed


def serve(conn: Connection, reads: Connection, overrides: dict, service_path: str,
          read_threads: int) -> None:
    """``service_path``: ``module:Class`` built from the settings (the real
    :class:`stream.scoring.service.ScoringService`, or a fake in tests)."""
    from shared.settings import load_settings

    limit_heap_growth()
    return_engine_memory_at_once()
    arrow_buffers_from_malloc()
    sys.setswitchinterval(SWITCH_INTERVAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        settings = load_settings(**overrides)
        # Before the service starts the engine: its pools take the niceness of their starter.
        niceness = lower_this_process(settings.scoring_nice)
        module, _, name = service_path.partition(":")
        service = getattr(importlib.import_module(module), name)(settings)
        level_threads(niceness)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", portable(exc)))
        return
    # After the service is built: a sink hook that imports pandas at its top keeps it (the
    # gate then closes nothing); the alert path itself never needs it.
    keep_pandas_out()
    freeze_startup_objects()
    conn.send(("ok", (os.getpid(), service.status())))
    threading.Thread(target=_serve_reads, args=(reads, service, read_threads), name="reads",
                     daemon=True).start()
    calls = {"process": _timed(service.process), "housekeeping": service.housekeeping}
    while True:
        try:
            number, name, args = conn.recv()
        except EOFError:  # the parent is gone (or stopped us): nothing more to do
            return
        try:
            answer = (number, "ok", calls[name](*args))
        except Exception as exc:  # noqa: BLE001 - the caller decides what an error means
            answer = (number, "error", portable(exc))
        conn.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
