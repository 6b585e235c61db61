"""A stream sink that writes nothing (``AMLSCORE_STREAM_SINK=tests.benchmarks.null_sink:discard``):
the stream benchmark's floor without ClickHouse writes, to measure what the writes cost."""

from __future__ import annotations

from typing import Any


class DiscardingSink:
    def __init__(self, real: Any) -> None:
        self.real = real

    def write_alerts(self, alerts: Any, scores: Any, scored_at: Any) -> None:
        pass

    def write_challenger_scores(self, scores: Any, scored_at: Any) -> None:
        pass

    def write_clusters(self, scores: Any, scored_at: Any) -> None:
        pass

    def write_unscored_clusters(self, *args: Any) -> None:
        pass

    def schema_problems(self) -> list[str]:
        return []

    def ping(self) -> None:
        self.real.ping()


def discard(real: Any) -> DiscardingSink:
    return DiscardingSink(real)
