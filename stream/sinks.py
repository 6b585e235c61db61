"""Where the worker writes: the StreamSink contract and its ClickHouse implementation.

A sink call returns only once its rows are durably written, or raises; the worker retries it and
acknowledges nothing until it returns. Any class with these methods can stand in (setting
``AMLSCORE_STREAM_SINK=module:factory``, a callable taking the default sink).
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Protocol

import pandas as pd
import pyarrow as pa

from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.score_store import ScoreStore
from shared.errors import ConfigurationError


class StreamSink(Protocol):
    def write_alerts(self, raw_alerts: pa.Table, scores: pd.DataFrame, scored_at: dt.datetime) -> None: ...

    def write_clusters(self, scores: pd.DataFrame, scored_at: dt.datetime) -> None: ...

    def ping(self) -> None: ...


class ClickHouseStreamSink:
    def __init__(self, raw: RawStore, scores: ScoreStore) -> None:
        self.raw = raw
        self.scores = scores

    def write_alerts(self, raw_alerts: pa.Table, scores: pd.DataFrame, scored_at: dt.datetime) -> None:
        # Raw alerts first: a cluster scored later finds its members. Both writes are
        # idempotent (ReplacingMergeTree), so a retry after a partial failure duplicates nothing.
        self.raw.insert("raw_alerts", raw_alerts)
        self.scores.write_alert_scores(scores, "stream", scored_at)

    def write_clusters(self, scores: pd.DataFrame, scored_at: dt.datetime) -> None:
        self.scores.write_cluster_scores(scores, "stream", scored_at)

    def ping(self) -> None:
        self.raw.client.query("SELECT 1")


def load_sink(spec: str | None, default: StreamSink) -> StreamSink:
    """``module:callable`` wrapping the default sink (fault injection, extra sinks, …)."""
    if not spec:
        return default
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"AMLSCORE_STREAM_SINK={spec!r} cannot be loaded: {exc}") from exc
    return factory(default)
