"""Score tables: idempotent writes (ReplacingMergeTree keyed by alert and model version), the
per-batch completion log that makes backfill resumable, and reads for export and checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.raw_store import BATCH_FILTER, RANGE_FILTER, batch_params, range_params
from shared.columns import day_numbers
from shared.pandas_gate import load_pandas
from shared.sink import SHADOW_TABLE, CompletedRun, ScoreRows

if TYPE_CHECKING:
    import pandas as pd

_KEY_TYPES = {"network": pa.string(), "processing_date": pa.date32(), "window_days": pa.uint16()}


def _arrow(rows: ScoreRows, types: dict[str, pa.DataType], source: str,
           scored_at: dt.datetime) -> pa.Table:
    columns = {name: pa.array(np.asarray(rows[name]), kind) if name != "processing_date"
               else pa.array(day_numbers(rows[name]), kind) for name, kind in types.items()}
    n = len(columns["alert_id" if "alert_id" in types else "cluster_id"])
    columns["scored_at"] = pa.array([scored_at] * n, pa.timestamp("ms", tz="UTC"))
    columns["source"] = pa.array([source] * n, pa.string())
    return pa.table(columns)


class ScoreStore:
    """ClickHouse implementation of :class:`shared.sink.ScoreSink` and :class:`shared.sink.ScoreRuns`."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db = check_identifier(database, "database")

    def write_alert_scores(self, scores: ScoreRows, source: str, scored_at: dt.datetime,
                           table: str = "alert_scores") -> None:
        """``table=SHADOW_TABLE`` for a challenger's rows."""
        if not len(scores["alert_id"]):
            return
        types = {**_KEY_TYPES, "alert_id": pa.string(), "address": pa.string(),
                 "model_version": pa.string(), "score": pa.float64(), "rank_score": pa.float64(),
                 "risk_level": pa.string(), "explanation": pa.string(), "qc_sample": pa.bool_()}
        assert table in ("alert_scores", SHADOW_TABLE), table
        self.client.insert_arrow(f"{self.db}.{table}",
                                 _arrow(scores, types, source, scored_at))

    def write_cluster_scores(self, scores: ScoreRows, source: str, scored_at: dt.datetime) -> None:
        if not len(scores["cluster_id"]):
            return
        types = {**_KEY_TYPES, "cluster_id": pa.string(), "model_version": pa.string(),
                 "score": pa.float64(), "risk_level": pa.string(), "n_alerts": pa.uint32(),
                 "n_alerts_found": pa.uint32()}
        self.client.insert_arrow(f"{self.db}.cluster_scores", _arrow(scores, types, source, scored_at))

    def mark_complete(self, runs: Sequence[CompletedRun]) -> None:
        if not runs:
            return
        completed_at = dt.datetime.now(dt.UTC)
        self.client.insert(
            f"{self.db}.score_runs", [[*run, completed_at] for run in runs],
            column_names=[*CompletedRun._fields, "completed_at"],
        )

    def completed_alerts(self, network: str, processing_date: dt.date, window_days: int,
                         model_version: str) -> int | None:
        """Alerts the last complete run of this model scored for the batch, or None."""
        rows = self.client.query(
            f"SELECT n_alerts FROM {self.db}.score_runs FINAL WHERE {BATCH_FILTER} "
            "AND model_version = {version:String}",
            parameters={**batch_params(network, processing_date, window_days), "version": model_version},
        ).result_rows
        return rows[0][0] if rows else None

    def alert_scores(self, networks: Sequence[str], start: dt.date, end: dt.date, window_days: int,
                     model_version: str | None = None) -> pd.DataFrame:
        where, params = RANGE_FILTER, range_params(networks, start, end, window_days)
        if model_version is not None:
            where += " AND model_version = {version:String}"
            params["version"] = model_version
        load_pandas()
        return self.client.query_df(
            f"SELECT network, processing_date, window_days, alert_id, address, model_version, score, "
            f"rank_score, risk_level, explanation, qc_sample, source FROM {self.db}.alert_scores FINAL "
            f"WHERE {where} ORDER BY network, processing_date, alert_id, model_version",
            parameters=params,
        )

    def top_alerts(self, network: str, processing_date: dt.date, window_days: int,
                   model_version: str, limit: int = 10) -> list[dict]:
        """The highest-scored alerts of a batch with what an investigator reads first."""
        result = self.client.query(
            # The score filter sits inside a subquery: a WHERE over a FINAL table joined to
            # another trips the embedded engine's analyzer (NOT_FOUND_COLUMN_IN_BLOCK).
            f"SELECT s.alert_id, s.address, s.score, s.risk_level, s.explanation, s.source, "
            f"a.typology_type, a.severity, a.volume_usd FROM (SELECT alert_id, address, score, "
            f"risk_level, explanation, source FROM {self.db}.alert_scores FINAL WHERE {BATCH_FILTER} "
            "AND model_version = {version:String}) AS s "
            f"LEFT JOIN (SELECT alert_id, typology_type, severity, volume_usd FROM {self.db}.raw_alerts "
            f"FINAL WHERE {BATCH_FILTER}) AS a ON a.alert_id = s.alert_id "
            "ORDER BY s.score DESC, s.alert_id LIMIT {limit:UInt32}",
            parameters={**batch_params(network, processing_date, window_days),
                        "version": model_version, "limit": limit},
        )
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def rankings_arrow(self, networks: Sequence[str], start: dt.date, end: dt.date,
                       window_days: int, model_version: str) -> pa.Table:
        return self.client.query_arrow(
            f"SELECT * FROM {self.db}.alert_rankings WHERE {RANGE_FILTER} "
            "AND model_version = {version:String} ORDER BY network, processing_date, rank_position",
            parameters={**range_params(networks, start, end, window_days), "version": model_version},
        )
