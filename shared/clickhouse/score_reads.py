"""Read-only, parameterized, paginated score queries for the worker's read API: JSON-ready rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.raw_store import BATCH_FILTER, batch_params


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        elif key == "explanation" and isinstance(value, str):
            value = orjson.loads(value or "[]")
        out[key] = value
    return out


class ScoreReads:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db = check_identifier(database, "database")

    def _rows(self, sql: str, params: dict) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=params)
        return [_json_ready(dict(zip(result.column_names, r, strict=True))) for r in result.result_rows]

    def _count(self, sql: str, params: dict) -> int:
        return int(self.client.query(sql, parameters=params).result_rows[0][0])

    def _page(self, columns: str, source: str, count_from: str, order: str, network: str,
              date: dt.date, window_days: int, model_version: str, limit: int,
              offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of a batch's rows for a model version, and how many there are in all."""
        params = {**batch_params(network, date, window_days), "version": model_version,
                  "limit": limit, "offset": offset}
        where = f"{BATCH_FILTER} AND model_version = {{version:String}}"
        rows = self._rows(f"SELECT {columns} FROM {self.db}.{source} WHERE {where} ORDER BY {order} "
                          "LIMIT {limit:UInt32} OFFSET {offset:UInt64}", params)
        return rows, self._count(f"SELECT count() FROM {self.db}.{count_from} FINAL WHERE {where}", params)

    def ranked_alerts(self, network: str, date: dt.date, window_days: int, model_version: str,
                      limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One batch's alerts in ``alert_rankings`` order (rank_score, then alert_id)."""
        return self._page("rank_position, alert_id, address, score, rank_score, risk_level, "
                          "explanation, model_version", "alert_rankings", "alert_scores",
                          "rank_position", network, date, window_days, model_version, limit, offset)

    def alert_history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every score row of the alert, across batches and model versions."""
        return self._rows(
            f"SELECT network, processing_date, window_days, alert_id, address, model_version, score, "
            f"rank_score, risk_level, explanation, source, scored_at FROM {self.db}.alert_scores FINAL "
            "WHERE alert_id = {alert_id:String} ORDER BY processing_date, window_days, model_version",
            {"alert_id": alert_id})

    def ranked_clusters(self, network: str, date: dt.date, window_days: int, model_version: str,
                        limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One batch's clusters by score (then cluster_id)."""
        return self._page("cluster_id, score, risk_level, n_alerts, n_alerts_found, model_version",
                          "cluster_scores FINAL", "cluster_scores", "score DESC, cluster_id",
                          network, date, window_days, model_version, limit, offset)
