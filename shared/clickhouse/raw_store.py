"""Raw SOT tables in ClickHouse: versioned writes (re-ingest replaces) and the reads that
training, backfill and the stream need. All values are bound as query parameters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.ddl import RAW_ALERT_COLUMNS, RAW_CLUSTER_COLUMNS
from shared.clickhouse.rows import conform, row_version, stamp
from shared.columns import day_numbers, is_frame
from shared.features import AlertColumns, row_count
from shared.pandas_gate import load_pandas

if TYPE_CHECKING:
    import pandas as pd

RAW_TABLES = ("raw_alerts", "raw_features", "raw_clusters", "raw_money_flows")
BATCH_FILTER = ("network = {network:String} AND processing_date = {date:Date} "
                "AND window_days = {window:UInt16}")
RANGE_FILTER = ("processing_date >= {start:Date} AND processing_date <= {end:Date} "
                "AND window_days = {window:UInt16} AND has({networks:Array(String)}, network)")


def batch_params(network: str, processing_date: dt.date, window_days: int) -> dict:
    return {"network": network, "date": processing_date, "window": window_days}


def range_params(networks: Sequence[str], start: dt.date, end: dt.date, window_days: int) -> dict:
    return {"networks": list(networks), "start": start, "end": end, "window": window_days}


def raw_alert_rows(alerts: AlertColumns, version: int) -> pa.Table:
    """Alerts (a DataFrame, or columns as lists) shaped for ``raw_alerts``."""
    wanted = ["network", "window_days", *RAW_ALERT_COLUMNS]
    if is_frame(alerts):
        source = pa.Table.from_pandas(alerts[[c for c in wanted if c in alerts]], preserve_index=False)
    else:
        source = pa.Table.from_pydict({c: alerts[c] for c in wanted if c in alerts})
    keys = {
        "network": source.column("network").cast(pa.string()),
        "processing_date": pa.array(day_numbers(alerts["processing_date"]), pa.date32()),
        "window_days": source.column("window_days").cast(pa.uint16()),
    }
    return stamp({**keys, **conform(source, RAW_ALERT_COLUMNS)}, source.num_rows, version)


class RawStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db = check_identifier(database, "database")

    # -- writes ------------------------------------------------------------------------------
    def feature_columns(self) -> list[str]:
        rows = self.client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'raw_features' "
            "AND name NOT IN ('network', 'processing_date', 'window_days', 'address', '_version', "
            "'_ingested_at') ORDER BY position",
            parameters={"db": self.db},
        ).result_rows
        return [r[0] for r in rows]

    def add_feature_columns(self, names: Sequence[str]) -> None:
        """New feature columns read back NaN for batches that did not have them."""
        existing = set(self.feature_columns())
        for name in names:
            if name not in existing:
                check_identifier(name, "feature column")
                self.client.command(
                    f"ALTER TABLE {self.db}.raw_features ADD COLUMN IF NOT EXISTS {name} Float64 DEFAULT nan"
                )

    def insert_alerts(self, alerts: AlertColumns) -> None:
        """Alerts as decoded (one row per alert, contract columns) into ``raw_alerts``."""
        if row_count(alerts):
            self.insert("raw_alerts", raw_alert_rows(alerts, row_version()))

    def insert_unscored_clusters(self, clusters: pd.DataFrame, model_version: str, reason: str,
                                 received_at: dt.datetime) -> None:
        """Clusters as decoded, kept whole in ``unscored_clusters`` with why they were not scored."""
        if not len(clusters):
            return
        source = pa.Table.from_pandas(clusters, preserve_index=False)
        n = source.num_rows
        columns = {
            "network": source.column("network").cast(pa.string()),
            "processing_date": pa.array(day_numbers(clusters["processing_date"]), pa.date32()),
            "window_days": source.column("window_days").cast(pa.uint16()),
            **conform(source, RAW_CLUSTER_COLUMNS),
            "model_version": pa.array([model_version] * n, pa.string()),
            "reason": pa.array([reason] * n, pa.string()),
            "received_at": pa.array([received_at] * n, pa.timestamp("ms", tz="UTC")),
        }
        self.client.insert_arrow(f"{self.db}.unscored_clusters", pa.table(columns))

    def insert(self, table: str, data: pa.Table) -> None:
        if data.num_rows:
            self.client.insert_arrow(f"{self.db}.{table}", data)

    def delete_superseded(self, table: str, network: str, processing_date: dt.date,
                          window_days: int, version: int) -> None:
        """Drop rows of this batch written by earlier ingests (rows the new one no longer has)."""
        params = {**batch_params(network, processing_date, window_days), "version": version}
        stale = self.client.query(
            f"SELECT count() FROM {self.db}.{table} WHERE {BATCH_FILTER} AND _version < {{version:UInt64}}",
            parameters=params,
        ).result_rows[0][0]
        if not stale:  # a DELETE is a mutation: skip it on first ingest
            return
        self.client.command(
            f"DELETE FROM {self.db}.{table} WHERE {BATCH_FILTER} AND _version < {{version:UInt64}}",
            parameters=params,
        )

    def replace_labels(self, network: str, labels: pa.Table, version: int) -> None:
        self.insert("raw_address_labels", labels)
        self.client.command(
            f"DELETE FROM {self.db}.raw_address_labels WHERE network = {{network:String}} "
            "AND _version < {version:UInt64}",
            parameters={"network": network, "version": version},
        )

    def log_ingest(self, network: str, processing_date: dt.date, window_days: int,
                   meta_sha256: str, counts: str, version: int) -> None:
        self.client.insert(
            f"{self.db}.ingest_log",
            [[network, processing_date, window_days, meta_sha256, counts, version,
              dt.datetime.now(dt.UTC)]],
            column_names=["network", "processing_date", "window_days", "meta_sha256", "counts",
                          "_version", "_ingested_at"],
        )

    # -- reads -------------------------------------------------------------------------------
    def ingested(self, network: str, processing_date: dt.date, window_days: int) -> bool:
        rows = self.client.query(
            f"SELECT count() FROM {self.db}.ingest_log FINAL WHERE {BATCH_FILTER}",
            parameters=batch_params(network, processing_date, window_days),
        ).result_rows
        return rows[0][0] > 0

    def count(self, table: str, network: str, processing_date: dt.date, window_days: int) -> int:
        return self.client.query(
            f"SELECT count() FROM {self.db}.{check_identifier(table)} FINAL WHERE {BATCH_FILTER}",
            parameters=batch_params(network, processing_date, window_days),
        ).result_rows[0][0]

    def batches(self, networks: Sequence[str], start: dt.date, end: dt.date,
                window_days: int) -> list[tuple[str, dt.date, int, int]]:
        """(network, date, window, alerts) of every ingested batch in range."""
        return [tuple(r) for r in self.client.query(
            f"SELECT network, processing_date, window_days, count() FROM {self.db}.raw_alerts FINAL "
            f"WHERE {RANGE_FILTER} GROUP BY network, processing_date, window_days "
            "ORDER BY network, processing_date",
            parameters=range_params(networks, start, end, window_days),
        ).result_rows]

    def date_range(self, networks: Sequence[str], window_days: int) -> tuple[dt.date, dt.date] | None:
        row = self.client.query(
            f"SELECT min(processing_date), max(processing_date), count() FROM {self.db}.raw_alerts "
            "WHERE window_days = {window:UInt16} AND has({networks:Array(String)}, network)",
            parameters={"window": window_days, "networks": list(networks)},
        ).result_rows[0]
        return (row[0], row[1]) if row[2] else None

    def networks(self) -> list[str]:
        return [r[0] for r in self.client.query(
            f"SELECT DISTINCT network FROM {self.db}.raw_alerts ORDER BY network").result_rows]

    def _frame(self, table: str, where: str, params: dict, order: str,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
        select = (", ".join(check_identifier(c, "column") for c in columns) if columns
                  else "* EXCEPT (_version, _ingested_at)")
        # Arrow from the engine, then one columnar conversion: ~3× faster than query_df, which
        # parses the native format column by column in Python.
        load_pandas()  # pyarrow's to_pandas imports it
        return self.client.query_arrow(
            f"SELECT {select} FROM {self.db}.{table} FINAL WHERE {where} ORDER BY {order}",
            parameters=params,
        ).to_pandas(date_as_object=False)

    def alerts(self, network: str, processing_date: dt.date, window_days: int,
               after_id: str = "", limit: int = 0,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One batch's alerts in alert_id order; ``after_id``/``limit`` page through it."""
        where = BATCH_FILTER + " AND alert_id > {after:String}"
        order = "alert_id" + (" LIMIT {limit:UInt64}" if limit else "")
        params = {**batch_params(network, processing_date, window_days), "after": after_id,
                  "limit": limit}
        return self._frame("raw_alerts", where, params, order, columns)

    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame:
        where, params = BATCH_FILTER, batch_params(network, processing_date, window_days)
        if addresses is not None:
            where += " AND address IN {addresses:Array(String)}"  # IN uses the sort key; has() scans
            params["addresses"] = list(addresses)
        return self._frame("raw_features", where, params, "address")

    def feature_rows(self, network: str, processing_date: dt.date, window_days: int,
                     addresses: Sequence[str] | None = None,
                     limit: int = 0) -> tuple[list[str], list[str], np.ndarray] | None:
        """(addresses found, feature columns, float64 matrix): the compact form of ``features``,
        for ``addresses`` or, when None, for the whole batch — then None if it holds more than
        ``limit`` rows (when ``limit`` is set)."""
        where = BATCH_FILTER
        params = batch_params(network, processing_date, window_days)
        if addresses is not None:
            where += " AND address IN {addresses:Array(String)}"
            params["addresses"] = list(addresses)
        elif limit:
            where += " LIMIT {limit:UInt64}"
            params["limit"] = limit + 1
        table = self.client.query_arrow(
            f"SELECT * EXCEPT (network, processing_date, window_days, _version, _ingested_at) "
            f"FROM {self.db}.raw_features FINAL WHERE {where}", parameters=params)
        if addresses is None and limit and table.num_rows > limit:
            return None
        columns = [c for c in table.column_names if c != "address"]
        found = table.column("address").to_pylist()
        matrix = np.empty((len(found), len(columns)), dtype=np.float64)
        for j, column in enumerate(columns):
            matrix[:, j] = table.column(column).to_numpy(zero_copy_only=False)
        return found, columns, matrix

    def clusters(self, network: str, processing_date: dt.date, window_days: int) -> pd.DataFrame:
        return self._frame("raw_clusters", BATCH_FILTER,
                           batch_params(network, processing_date, window_days), "cluster_id")

    def alerts_by_id(self, network: str, processing_date: dt.date, window_days: int,
                     alert_ids: Sequence[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
        return self._frame("raw_alerts", BATCH_FILTER + " AND alert_id IN {ids:Array(String)}",
                           {**batch_params(network, processing_date, window_days),
                            "ids": list(alert_ids)}, "alert_id", columns)

    def range_frame(self, table: str, networks: Sequence[str], start: dt.date, end: dt.date,
                    window_days: int, columns: Sequence[str] | None = None) -> pd.DataFrame:
        order = {"raw_alerts": "network, processing_date, alert_id",
                 "raw_features": "network, processing_date, address",
                 "raw_clusters": "network, processing_date, cluster_id"}[table]
        return self._frame(table, RANGE_FILTER, range_params(networks, start, end, window_days),
                           order, columns)

    def labels(self, networks: Sequence[str]) -> pd.DataFrame:
        load_pandas()
        return self.client.query_df(
            f"SELECT network, address, risk_level FROM {self.db}.raw_address_labels FINAL "
            "WHERE has({networks:Array(String)}, network) ORDER BY network, address",
            parameters={"networks": list(networks)},
        )
