"""Run the worker in this process (what `amlscore worker` calls)."""

from __future__ import annotations

import faust

from shared.settings import Settings
from stream.app import build_worker


def run_worker(settings: Settings, overrides: dict | None = None) -> None:
    worker = build_worker(settings, overrides)
    # faust.Worker installs the signal handlers: SIGTERM/SIGINT stop gracefully (the in-flight
    # batch stays unacknowledged and is redelivered to whoever owns the partition next).
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
