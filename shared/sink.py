"""The score sink contract: where scored rows go, for backfill and the stream alike. Columns in
(RiskScoring's: a DataFrame or a dict of arrays, anything where ``rows[name]`` is a column); the
shaping for a store lives in that store's implementation
(``shared.clickhouse.score_store.ScoreStore``). Swappable: a test double, another store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

ScoreRows = Mapping[str, Any]  # column name → column
SHADOW_TABLE = "alert_scores_shadow"  # a challenger's rows: same keys and columns as alert_scores


class ScoreSink(Protocol):
    def write_alert_scores(self, scores: ScoreRows, source: str, scored_at: dt.datetime,
                           table: str = "alert_scores") -> None:
        """Durably write alert score rows; return only once they are written (or raise).
        ``table=SHADOW_TABLE``: a challenger's rows."""

    def write_cluster_scores(self, scores: ScoreRows, source: str, scored_at: dt.datetime) -> None:
        """Durably write cluster score rows; return only once they are written (or raise)."""


class CompletedRun(NamedTuple):
    """One batch a model version has completely scored."""

    network: str
    processing_date: dt.date
    window_days: int
    model_version: str
    n_alerts: int
    n_clusters: int


class ScoreRuns(Protocol):
    """Backfill's resume log: which batches a model version has completely scored."""

    def completed_alerts(self, network: str, processing_date: dt.date, window_days: int,
                         model_version: str) -> int | None:
        """Alerts the last complete run scored for the batch, or None."""

    def mark_complete(self, runs: Sequence[CompletedRun]) -> None:
        """Record these batches complete, in one write; called only after all their rows are
        written."""
