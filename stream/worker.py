"""Run the worker in this process (what `amlscore worker` calls)."""

from __future__ import annotations

import sys

import faust

from shared.settings import Settings
from stream.app import build_worker
from stream.memory import limit_heap_growth

EXIT_FATAL = 70  # EX_SOFTWARE: the worker stopped on an error; its supervisor should restart it

# Faust's consumer thread and the event loop share the interpreter lock. With the default 5 ms
# switch interval, a scoring answer that arrives while the consumer thread runs waits up to 5 ms
# for each hand-over; 1 ms keeps those waits off the event→score latency.
GIL_SWITCH_INTERVAL = 0.001


def run_worker(settings: Settings, overrides: dict | None = None) -> None:
    limit_heap_growth()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    worker = build_worker(settings, overrides)
    # faust.Worker installs the signal handlers: SIGTERM/SIGINT stop gracefully (in-flight
    # batches stay unacknowledged and are redelivered to whoever owns the partition next).
    try:
        faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    except SystemExit:
        if worker.fatal is None:
            raise
    raise SystemExit(EXIT_FATAL if worker.fatal is not None else 0)
