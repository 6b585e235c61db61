"""Investigators' decisions in ``alert_dispositions``: written by the stream (topic and API) and
by ``amlscore dispositions import``; read as labels as of a point in time, as one alert's audit
trail, and as the figures the worker's gauges show.

Every decision is a row of its own. "As of T" means: only decisions made (``decided_at``) at or
before T count, and of those an alert's latest one is its label; nothing decided after T can
leak into what is computed as of T.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.raw_store import RANGE_FILTER, range_params
from shared.pandas_gate import load_pandas
from shared.schemas import DispositionEvent

if TYPE_CHECKING:
    import pandas as pd

DISPOSITION_SOURCES = ("stream", "api", "import")
# The latest decision wins; two made in the same millisecond: the one recorded last.
LATEST = "(decided_at, recorded_at)"


def disposition_rows(events: Sequence[DispositionEvent], source: str,
                     recorded_at: dt.datetime) -> pa.Table:
    if source not in DISPOSITION_SOURCES:
        raise ValueError(f"source must be one of {DISPOSITION_SOURCES}")
    n = len(events)
    return pa.table({
        "network": pa.array([e.network for e in events], pa.string()),
        "processing_date": pa.array([e.processing_date for e in events], pa.date32()),
        "window_days": pa.array([e.window_days for e in events], pa.uint16()),
        "alert_id": pa.array([e.alert_id for e in events], pa.string()),
        "disposition": pa.array([e.disposition for e in events], pa.string()),
        "analyst": pa.array([e.analyst for e in events], pa.string()),
        "decided_at": pa.array([e.decided_at for e in events], pa.timestamp("ms", tz="UTC")),
        "note": pa.array([e.note for e in events], pa.string()),
        "sar_filed": pa.array([e.sar_filed for e in events], pa.bool_()),
        "source": pa.array([source] * n, pa.string()),
        "recorded_at": pa.array([recorded_at] * n, pa.timestamp("ms", tz="UTC")),
    })


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class DispositionStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db = check_identifier(database, "database")

    def write(self, events: Sequence[DispositionEvent], source: str,
              recorded_at: dt.datetime | None = None) -> None:
        """Idempotent: the same decision written twice is one row (same key, replaced)."""
        if events:
            self.client.insert_arrow(f"{self.db}.alert_dispositions",
                                     disposition_rows(events, source, recorded_at or dt.datetime.now(dt.UTC)))

    def any(self) -> bool:
        rows = self.client.query(f"SELECT count() > 0 FROM {self.db}.alert_dispositions").result_rows
        return bool(rows[0][0])

    def latest(self, networks: Sequence[str], start: dt.date, end: dt.date, window_days: int,
               as_of: dt.datetime) -> pd.DataFrame:
        """Each alert's latest decision made by ``as_of``: network, processing_date,
        window_days, alert_id, disposition, sar_filed, decided_at."""
        result = self.client.query(
            f"SELECT network, processing_date, window_days, alert_id, "
            f"argMax(disposition, {LATEST}) AS disposition, argMax(sar_filed, {LATEST}) AS sar_filed, "
            f"max(decided_at) AS last_decided_at FROM {self.db}.alert_dispositions FINAL "
            f"WHERE {RANGE_FILTER} AND decided_at <= {{as_of:DateTime64(3, 'UTC')}} "
            "GROUP BY network, processing_date, window_days, alert_id",
            parameters={**range_params(networks, start, end, window_days), "as_of": _utc(as_of)})
        columns = ["network", "processing_date", "window_days", "alert_id", "disposition",
                   "sar_filed", "decided_at"]
        pd = load_pandas()  # labels are training's (the stream only writes decisions)

        return pd.DataFrame(result.result_rows, columns=columns)

    def history(self, alert_id: str, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every decision on the alert, oldest first (the audit trail)."""
        result = self.client.query(
            f"SELECT network, processing_date, window_days, disposition, analyst, decided_at, note, "
            f"sar_filed, source, recorded_at FROM {self.db}.alert_dispositions FINAL "
            "WHERE alert_id = {alert_id:String} ORDER BY decided_at, recorded_at",
            parameters={"alert_id": alert_id}, settings=settings or {})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def figures(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the worker's gauges show: decisions per disposition (every decision); and, from
        each alert's latest decision and the risk band of its latest score, the share of true
        positives (escalations and SARs included) among decided alerts per band and the median
        hours from the alert's first score to its decision (decisions made after the score)."""
        latest = (f"SELECT network, processing_date, window_days, alert_id, max(decided_at) AS last_decided_at, "
                  f"argMax(disposition IN ('true_positive', 'escalated') OR sar_filed, {LATEST}) AS positive "
                  f"FROM {self.db}.alert_dispositions FINAL "
                  "GROUP BY network, processing_date, window_days, alert_id")
        scored = (f"SELECT network, processing_date, window_days, alert_id, "
                  f"argMax(risk_level, scored_at) AS risk_level, min(scored_at) AS first_scored "
                  f"FROM {self.db}.alert_scores FINAL WHERE (network, processing_date, window_days) IN "
                  f"(SELECT DISTINCT network, processing_date, window_days FROM {self.db}.alert_dispositions) "
                  "GROUP BY network, processing_date, window_days, alert_id")
        result = self.client.query(
            f"SELECT s.risk_level, count(), countIf(d.positive), "
            f"quantileIf(0.5)(dateDiff('millisecond', s.first_scored, d.last_decided_at) / 3600000.0, "
            f"d.last_decided_at >= s.first_scored) FROM ({latest}) AS d INNER JOIN ({scored}) AS s "
            "ON s.network = d.network AND s.processing_date = d.processing_date "
            "AND s.window_days = d.window_days AND s.alert_id = d.alert_id "
            "GROUP BY s.risk_level ORDER BY s.risk_level", settings=settings or {})
        bands = {str(level): {"decided": int(n), "true_positive_share": positives / n,
                              "median_hours_to_decision": None if hours != hours else float(hours)}
                 for level, n, positives, hours in result.result_rows}
        counts = self.client.query(
            f"SELECT disposition, count() FROM {self.db}.alert_dispositions FINAL GROUP BY disposition",
            settings=settings or {}).result_rows
        return {"decisions": {str(d): int(n) for d, n in counts}, "bands": bands}
