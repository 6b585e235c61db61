"""The ``model_registry`` table: a queryable record of every trained model and its status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import orjson
from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier

COLUMNS = ["model_version", "model_name", "status", "path", "feature_names", "train_start",
           "train_end", "networks", "metrics", "data_fingerprint", "registered_at", "updated_at"]


class RegistryStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db = check_identifier(database, "database")

    def register(self, *, version: str, name: str, status: str, path: str,
                 feature_names: Sequence[str], train_start: dt.date, train_end: dt.date,
                 networks: Sequence[str], metrics: dict, fingerprint: str) -> None:
        now = dt.datetime.now(dt.UTC)
        self.client.insert(f"{self.db}.model_registry", [[
            version, name, status, path, list(feature_names), train_start, train_end,
            list(networks), orjson.dumps(metrics).decode(), fingerprint, now, now,
        ]], column_names=COLUMNS)

    def mark_promoted(self, version: str) -> None:
        """``version``'s rows become ``promoted`` and every other promoted row ``candidate``, so
        exactly one version reads promoted (ReplacingMergeTree keeps each row's newest copy)."""
        rows = self.client.query(
            f"SELECT {', '.join(COLUMNS)} FROM {self.db}.model_registry FINAL "
            "WHERE model_version = {version:String} OR status = 'promoted'",
            parameters={"version": version},
        ).result_rows
        now = dt.datetime.now(dt.UTC)
        updated = [[*r[:2], "promoted" if r[0] == version else "candidate", *r[3:11], now]
                   for r in rows]
        if updated:
            self.client.insert(f"{self.db}.model_registry", updated, column_names=COLUMNS)

    def rows(self) -> list[dict]:
        result = self.client.query(
            f"SELECT model_version, model_name, status, train_start, train_end, metrics "
            f"FROM {self.db}.model_registry FINAL ORDER BY model_version, model_name")
        return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
