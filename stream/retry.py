"""Retry until success or shutdown: the worker never skips a write, it waits for it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class ShutdownRequested(Exception):
    """The worker is stopping; the unfinished batch stays unacknowledged and is redelivered."""


class Backoff:
    def __init__(self, initial: float = 0.2, maximum: float = 10.0) -> None:
        self.initial = initial
        self.maximum = maximum

    def delays(self):
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.maximum)


def retry_blocking(what: str, func: Callable[[], T], backoff: Backoff, stopping: threading.Event,
                   on_failure: Callable[[Exception], None] | None = None) -> T:
    for attempt, delay in enumerate(backoff.delays(), start=1):
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - every failure is retried; none is skipped
            log.warning("%s failed (attempt %d, next in %.1fs): %s", what, attempt, delay, exc)
            if on_failure is not None:
                on_failure(exc)
        if stopping.wait(delay):
            raise ShutdownRequested(what)
    raise AssertionError("unreachable")


async def retry_async(what: str, func: Callable[[], Awaitable[T]], backoff: Backoff,
                      stopping: threading.Event,
                      on_failure: Callable[[Exception], None] | None = None) -> T:
    for attempt, delay in enumerate(backoff.delays(), start=1):
        if stopping.is_set():
            raise ShutdownRequested(what)
        try:
            return await func()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.warning("%s failed (attempt %d, next in %.1fs): %s", what, attempt, delay, exc)
            if on_failure is not None:
                on_failure(exc)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")
