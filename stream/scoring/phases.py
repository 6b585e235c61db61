"""The per-micro-batch trace (seconds per phase), and how a failed store read is reported."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from stream.boundary import SinkUnavailable

T = TypeVar("T")


class PhaseTimer:
    """Seconds spent per named phase of one micro-batch."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started


def unavailable(what: str, func: Callable[..., T], *args: object) -> T:
    """Reads from the store fail the micro-batch as a whole: the caller retries it later."""
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001
        raise SinkUnavailable.caused_by(exc, what) from exc
