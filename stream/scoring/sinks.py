"""Where the scoring process writes: the StreamSink contract, its ClickHouse implementation, and
what to do when a write fails.

A sink call returns only once its rows are durably written, or raises. A failure is one of two
kinds, and they are handled in opposite ways:

- the sink is unavailable (connection, server, anything unknown): :class:`SinkUnavailable`, the
  whole batch is retried later and nothing is acknowledged meanwhile;
- the sink refused the *data* of some rows: those rows are found by bisecting the batch and
  dead-lettered with reason ``sink_rejected``; the others are written.

Every row the stream writes goes through the sink: raw alerts, scores, the challenger's scores,
cluster scores and unscored clusters. Reads (address features, cluster members, the read API)
go to ClickHouse directly. ``AMLSCORE_STREAM_SINK=module:factory`` names a callable that is
given the ClickHouse sink and returns the sink to use: a wrapper (say, one that also copies
scores elsewhere) — the ClickHouse tables remain what the worker reads back.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa

from shared.clickhouse.migrations import schema_problems
from shared.clickhouse.raw_store import RawStore
from shared.errors import ConfigurationError
from shared.features import AlertColumns
from shared.sink import SHADOW_TABLE, ScoreRows, ScoreSink
from stream.boundary import SinkUnavailable

if TYPE_CHECKING:
    import pandas as pd

# ClickHouse error codes that say "this data cannot be stored", not "the server is unwell".
DATA_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
})
_CODE = re.compile(r"\bCode: (\d+)\b")
SINK_TABLES = ("raw_alerts", "alert_scores", "cluster_scores", "unscored_clusters")


class StreamSink(Protocol):
    def write_alerts(self, alerts: AlertColumns, scores: ScoreRows, scored_at: dt.datetime) -> None:
        """``alerts``: the decoded alert columns; ``scores``: RiskScoring's rows, same order."""

    def write_challenger_scores(self, scores: ScoreRows, scored_at: dt.datetime) -> None:
        """The challenger's rows (never published, never ranked)."""

    def write_clusters(self, scores: ScoreRows, scored_at: dt.datetime) -> None: ...

    def write_unscored_clusters(self, clusters: pd.DataFrame, model_version: str, reason: str,
                                received_at: dt.datetime) -> None:
        """Valid clusters the model in use cannot score, kept whole with the reason."""

    def schema_problems(self) -> list[str]:
        """How the sink's tables differ from what it writes (empty: as they should be)."""

    def ping(self) -> None: ...


def is_data_rejection(exc: BaseException) -> bool:
    """True when ``exc`` says the rows' values cannot be stored (retrying cannot help)."""
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError | OverflowError):
        return True  # the values could not even be converted to the table's types
    match = _CODE.search(str(exc))
    return bool(match) and int(match.group(1)) in DATA_ERROR_CODES


def write_isolating(write: Callable[[np.ndarray], None], n: int,
                    schema_problems: Callable[[], list[str]] | None = None) -> dict[int, str]:
    """Write rows ``0..n-1`` through ``write(indices)``; return the rows the sink rejected, with
    the error. A batch whose every row is rejected — one row or many — is taken for a sink in
    trouble (a dropped table, a changed schema) and raises SinkUnavailable, unless
    ``schema_problems`` finds the sink's tables exactly as they should be: then the rows really
    are bad and are returned. Every other failure raises SinkUnavailable."""
    rejected: dict[int, str] = {}

    def attempt(rows: np.ndarray) -> None:
        try:
            write(rows)
            return
        except Exception as exc:  # noqa: BLE001 - classified right here
            if not is_data_rejection(exc):
                raise SinkUnavailable.caused_by(exc) from exc
            if len(rows) == 1:
                rejected[int(rows[0])] = f"{type(exc).__name__}: {exc}"[:500]
                return
        middle = len(rows) // 2
        attempt(rows[:middle])
        attempt(rows[middle:])

    if n:
        attempt(np.arange(n))
    if n and len(rejected) == n:
        problems = schema_problems() if schema_problems is not None else ["not checked"]
        if problems:
            raise SinkUnavailable(f"every row of the batch was rejected ({'; '.join(problems[:3])}), "
                                  f"e.g. {rejected[0]}")
    return rejected


class ClickHouseStreamSink:
    """The stream's writes: raw alerts (so clusters and backfill find them) and scores through the
    same :class:`ScoreSink` backfill writes to. ``raw_alerts`` and ``alert_scores`` are written at
    once, each on a client of its own (the engine runs both inserts side by side); the call
    returns when both are written. Both writes are idempotent (ReplacingMergeTree), so a retry
    after one of them failed duplicates nothing."""

    def __init__(self, raw: RawStore, scores: ScoreSink, raw_beside: RawStore | None = None,
                 challenger: ScoreSink | None = None) -> None:
        self.raw = raw
        self.scores = scores
        # The challenger writes from a thread of its own: a client of its own too (a server
        # refuses two concurrent queries in one session).
        self.challenger = challenger or scores
        self._raw_beside = raw_beside  # raw_alerts' own client, for the side-by-side insert
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="raw-alerts") if raw_beside else None

    def write_alerts(self, alerts: AlertColumns, scores: ScoreRows, scored_at: dt.datetime) -> None:
        if self._beside is None or self._raw_beside is None:
            self.raw.insert_alerts(alerts)
            self.scores.write_alert_scores(scores, "stream", scored_at)
            return
        raw_written = self._beside.submit(self._raw_beside.insert_alerts, alerts)
        try:
            self.scores.write_alert_scores(scores, "stream", scored_at)
        finally:
            raw_written.result()  # waited for even when the scores failed: no write outlives the call

    def write_challenger_scores(self, scores: ScoreRows, scored_at: dt.datetime) -> None:
        self.challenger.write_alert_scores(scores, "stream", scored_at, table=SHADOW_TABLE)

    def write_clusters(self, scores: ScoreRows, scored_at: dt.datetime) -> None:
        self.scores.write_cluster_scores(scores, "stream", scored_at)

    def write_unscored_clusters(self, clusters: pd.DataFrame, model_version: str, reason: str,
                                received_at: dt.datetime) -> None:
        self.raw.insert_unscored_clusters(clusters, model_version, reason, received_at)

    def schema_problems(self) -> list[str]:
        return schema_problems(self.raw.client, self.raw.db, SINK_TABLES)

    def ping(self) -> None:
        self.raw.client.query("SELECT 1")


def load_sink(spec: str | None, default: StreamSink) -> StreamSink:
    """``module:callable`` given the ClickHouse sink; it returns the sink to use."""
    if not spec:
        return default
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"AMLSCORE_STREAM_SINK={spec!r} cannot be loaded: {exc}") from exc
    return factory(default)
