"""Publish historical alerts (and clusters) into Kafka: from a SOT batch directory or from
ClickHouse, with batched produce. The way to backfill through the worker fleet."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd

from shared.columns import iso_dates
from shared.features import KEY_COLUMNS
from shared.kafka_io import Record
from shared.schemas import AlertEvent, ClusterEvent

EVENT_FIELDS = [f for f in AlertEvent.model_fields if f not in ("features", "event_time", "schema_version")]
CLUSTER_FIELDS = [f for f in ClusterEvent.model_fields if f != "schema_version"]


@dataclass
class ReplayReport:
    alerts: int = 0
    clusters: int = 0
    seconds: float = 0.0

    def count_alert(self) -> None:
        self.alerts += 1


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _iso_dates(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(processing_date=iso_dates(frame["processing_date"]))


def embed(alert_id: str, mode: str) -> bool:
    """'mixed' embeds features in about half the events, the same half on every run."""
    return mode == "embed" or (mode == "mixed" and int(alert_id.replace("-", "")[-1], 16) % 2 == 0)


def alert_records(alerts: pd.DataFrame, features: pd.DataFrame | None, topic: str,
                  features_mode: str) -> Iterator[Record]:
    by_address: dict[str, dict] = {}
    if features is not None and len(features) and features_mode != "lookup":
        columns = [c for c in features.columns if c not in KEY_COLUMNS and not c.startswith("_")]
        for address, row in zip(features["address"].astype(str),
                                features[columns].to_dict("records"), strict=True):
            by_address[address] = {k: _clean(v) for k, v in row.items()}
    fields = [f for f in EVENT_FIELDS if f in alerts.columns]
    for row in _iso_dates(alerts)[fields].to_dict("records"):
        event = {k: _clean(v) for k, v in row.items()}
        event["schema_version"] = 1
        if embed(event["alert_id"], features_mode) and event["address"] in by_address:
            event["features"] = by_address[event["address"]]
        yield topic, event["alert_id"].encode(), orjson.dumps(event)


def cluster_records(clusters: pd.DataFrame, topic: str) -> Iterator[Record]:
    fields = [f for f in CLUSTER_FIELDS if f in clusters.columns]
    for row in _iso_dates(clusters)[fields].to_dict("records"):
        event = {k: _clean(v) for k, v in row.items()}
        event["schema_version"] = 1
        yield topic, event["cluster_id"].encode(), orjson.dumps(event)


@dataclass(frozen=True)
class ReplayBatch:
    alerts: pd.DataFrame
    features: pd.DataFrame | None
    clusters: pd.DataFrame | None


def _with_key(table, network: str, processing_date, window_days: int) -> pd.DataFrame:  # noqa: ANN001
    frame = table.to_pandas()
    frame["network"], frame["processing_date"], frame["window_days"] = network, processing_date, window_days
    return frame


def batches_from_sot(fs, root: str, keys) -> Iterator[ReplayBatch]:  # noqa: ANN001 - pyarrow fs
    from batch.sot_reader import read_batch
    for key in keys:
        batch = read_batch(fs, root, key)  # validated exactly as ingest does
        args = (key.network, key.processing_date, key.window_days)
        yield ReplayBatch(_with_key(batch.tables["alerts.parquet"], *args),
                          _with_key(batch.tables["features.parquet"], *args),
                          _with_key(batch.tables["clusters.parquet"], *args))


def batches_from_clickhouse(raw, batches) -> Iterator[ReplayBatch]:  # noqa: ANN001 - RawStore
    for network, date, window, _count in batches:
        yield ReplayBatch(raw.alerts(network, date, window), raw.features(network, date, window),
                          raw.clusters(network, date, window))


def envelopes(alert_messages: Iterator[Record], size: int) -> Iterator[Record]:
    """Alerts in envelopes of up to ``size`` (``{"schema_version": 1, "alerts": [...]}``), keyed
    by the first alert's id: the worker scores each alert as if it had come alone."""
    chunk: list[Record] = []

    def wrap() -> Record:
        body = b'{"schema_version":1,"alerts":[' + b",".join(v for _, _, v in chunk) + b"]}"
        return chunk[0][0], chunk[0][1], body

    for record in alert_messages:
        chunk.append(record)
        if len(chunk) == size:
            yield wrap()
            chunk = []
    if chunk:
        yield wrap()


def records(batches: Iterator[ReplayBatch], alerts_topic: str, clusters_topic: str,
            features_mode: str, report: ReplayReport, with_clusters: bool = True,
            envelope: int = 1) -> Iterator[Record]:
    """Each batch's alerts, then its clusters (so members tend to be there first). With
    ``envelope`` > 1, alerts travel that many to a message."""
    for batch in batches:
        alerts = alert_records(batch.alerts, batch.features, alerts_topic, features_mode)
        counted = (report.count_alert() or record for record in alerts)
        yield from envelopes(counted, envelope) if envelope > 1 else counted
        if with_clusters and batch.clusters is not None:
            for record in cluster_records(batch.clusters, clusters_topic):
                report.clusters += 1
                yield record
