"""Read-only, parameterized, paginated score queries for the worker's read API: JSON-ready rows.

Every query reads only what it answers: a page of one batch filters on the batch (the table's
key prefix) *before* it ranks, and one alert's history reads only the granules whose
bloom-filter index may hold its id. Each query runs under ``limits`` (ClickHouse's
``max_execution_time``, ``max_memory_usage``, one thread, optionally a lower OS priority), so no
read can hold the engine long.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.raw_store import BATCH_FILTER, batch_params


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """orjson writes dates and datetimes itself; an explanation is JSON already, taken as it is."""
    explanation = row.get("explanation")
    if isinstance(explanation, str):
        row["explanation"] = orjson.Fragment(explanation or "[]")
    return row


def read_limits(seconds: float, memory_bytes: int, niceness: int = 0) -> dict[str, Any]:
    """ClickHouse settings that bound one read query in time, memory and threads. ``niceness``
    is the engine's ``os_thread_priority``: a query runs on the engine's own threads, not on the
    caller's, so a caller's lower priority does not reach the work itself (measured: a query
    from a thread at nice 10 ran on an engine thread at nice 0)."""
    limits: dict[str, Any] = {"max_execution_time": max(1, round(seconds)),
                              "max_memory_usage": memory_bytes, "max_threads": 1,
                              "timeout_overflow_mode": "throw"}
    if niceness:
        limits["os_thread_priority"] = niceness
    return limits


LEAVE_OUT_SUPPRESSED = " AND risk_level != 'suppressible'"


def page_query(db: str, columns: str, table: str, order: str, network: str, date: dt.date,
               window_days: int, model_version: str, limit: int, offset: int,
               where: str = "") -> tuple[str, dict]:
    """A page of one batch: filtered on the batch (and ``where``) before ``row_number`` ranks it,
    so positions are those of the queue the page belongs to."""
    params = {**batch_params(network, date, window_days), "version": model_version,
              "limit": limit, "offset": offset}
    return (f"SELECT * FROM (SELECT {columns}, row_number() OVER (ORDER BY {order}) AS rank_position, "
            f"count() OVER () AS _total FROM {db}.{table} FINAL WHERE {BATCH_FILTER} "
            f"AND model_version = {{version:String}}{where}) "
            "ORDER BY rank_position LIMIT {limit:UInt32} OFFSET {offset:UInt64}", params)


def undecided_query(db: str) -> str:
    """The batch's undecided alerts (parameters: the batch and ``version``): ranked as
    ``ranked_alerts`` ranks the queue (suppressible ones out), then every alert with any
    decision left out. ``rank_position`` is the alert's place in the ranked queue,
    ``queue_position`` its place among the undecided."""
    ranked = (f"SELECT alert_id, address, score, rank_score, risk_level, explanation, qc_sample, "
              f"model_version, row_number() OVER (ORDER BY rank_score DESC, alert_id) AS rank_position "
              f"FROM {db}.alert_scores FINAL WHERE {BATCH_FILTER} AND model_version = {{version:String}}"
              f"{LEAVE_OUT_SUPPRESSED}")
    return (f"SELECT *, row_number() OVER (ORDER BY rank_position) AS queue_position, "
            f"count() OVER () AS _total FROM ({ranked}) WHERE alert_id NOT IN "
            f"(SELECT alert_id FROM {db}.alert_dispositions WHERE {BATCH_FILTER})")


def history_query(db: str, alert_id: str) -> tuple[str, dict]:
    """One alert's rows: only the granules whose bloom filter may hold its id are read."""
    return (f"SELECT network, processing_date, window_days, alert_id, address, model_version, score, "
            f"rank_score, risk_level, explanation, qc_sample, source, scored_at FROM {db}.alert_scores FINAL "
            "WHERE alert_id = {alert_id:String} ORDER BY processing_date, window_days, model_version",
            {"alert_id": alert_id})


class ScoreReads:
    def __init__(self, client: Client, database: str, limits: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.db = check_identifier(database, "database")
        self.limits = dict(limits or {})

    def _rows(self, sql: str, params: dict) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=params, settings=self.limits)
        return [_json_ready(dict(zip(result.column_names, r, strict=True))) for r in result.result_rows]

    def _page(self, columns: str, table: str, order: str, network: str, date: dt.date,
              window_days: int, model_version: str, limit: int,
              offset: int, extra: str = "") -> tuple[list[dict[str, Any]], int]:
        """One page of a batch's rows for a model version, ranked within the batch only, and
        how many rows the batch has."""
        sql, params = page_query(self.db, columns, table, order, network, date, window_days,
                                 model_version, limit, offset, extra)
        rows = self._rows(sql, params)
        where = f"{BATCH_FILTER} AND model_version = {{version:String}}{extra}"
        if rows:
            total = int(rows[0]["_total"])
        else:  # past the end (or an empty batch): the count alone
            total = int(self.client.query(f"SELECT count() FROM {self.db}.{table} FINAL WHERE {where}",
                                          parameters=params, settings=self.limits).result_rows[0][0])
        for row in rows:
            del row["_total"]
        return rows, total

    def ranked_alerts(self, network: str, date: dt.date, window_days: int, model_version: str,
                      limit: int, offset: int,
                      suppressed: bool = True) -> tuple[list[dict[str, Any]], int]:
        """One batch's alerts in ``alert_rankings`` order (rank_score, then alert_id);
        ``suppressed=False`` leaves suppressible alerts out (positions are then the queue's)."""
        rows, total = self._page("alert_id, address, score, rank_score, risk_level, explanation, "
                                 "qc_sample, model_version", "alert_scores", "rank_score DESC, alert_id",
                                 network, date, window_days, model_version, limit, offset,
                                 "" if suppressed else LEAVE_OUT_SUPPRESSED)
        return [{"rank_position": r.pop("rank_position"), **r} for r in rows], total

    def queue(self, network: str, date: dt.date, window_days: int, model_version: str, limit: int,
              offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of the batch's undecided alerts in queue order, and how many are undecided."""
        params = {**batch_params(network, date, window_days), "version": model_version,
                  "limit": limit, "offset": offset}
        undecided = undecided_query(self.db)
        rows = self._rows(f"SELECT * FROM ({undecided}) ORDER BY queue_position "
                          "LIMIT {limit:UInt32} OFFSET {offset:UInt64}", params)
        if rows:
            total = int(rows[0]["_total"])
        else:  # past the end, or nothing left undecided
            total = int(self.client.query(f"SELECT count() FROM ({undecided})", parameters=params,
                                          settings=self.limits).result_rows[0][0])
        items = []
        for row in rows:
            del row["_total"]
            items.append({"queue_position": row.pop("queue_position"),
                          "rank_position": row.pop("rank_position"), **row})
        return items, total

    def alert_history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every score row of the alert, across batches and model versions."""
        return self._rows(*history_query(self.db, alert_id))

    def ranked_clusters(self, network: str, date: dt.date, window_days: int, model_version: str,
                        limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One batch's clusters by score (then cluster_id)."""
        rows, total = self._page("cluster_id, score, risk_level, n_alerts, n_alerts_found, model_version",
                                 "cluster_scores", "score DESC, cluster_id", network, date,
                                 window_days, model_version, limit, offset)
        for row in rows:
            del row["rank_position"]
        return rows, total

