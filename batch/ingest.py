"""Load SOT batches into the raw ClickHouse tables.

Order per batch: read and validate everything (nothing written yet) → add any new feature
columns → insert every table with a fresh ``_version`` → delete this batch's rows of older
versions → log the batch. A refused batch therefore leaves no rows; a re-ingest replaces.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.fs as pafs

from batch.sot_reader import BatchKey, SotBatch, find_batches, read_batch, read_labels
from shared.clickhouse.ddl import (
    RAW_ALERT_COLUMNS,
    RAW_CLUSTER_COLUMNS,
    RAW_LABEL_COLUMNS,
    RAW_MONEY_FLOW_COLUMNS,
)
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.rows import arrow_column, conform, row_version, stamp
from shared.errors import BatchRejected
from shared.features import KEY_COLUMNS

TABLES = {
    "alerts.parquet": ("raw_alerts", RAW_ALERT_COLUMNS),
    "clusters.parquet": ("raw_clusters", RAW_CLUSTER_COLUMNS),
    "money_flows.parquet": ("raw_money_flows", RAW_MONEY_FLOW_COLUMNS),
}


@dataclass
class IngestReport:
    ingested: list[BatchKey] = field(default_factory=list)
    skipped: list[BatchKey] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def did_nothing(self) -> bool:
        return not (self.ingested or self.skipped or self.refused or self.labels)


def _keyed(key: BatchKey, n: int) -> dict[str, pa.Array]:
    return {
        "network": pa.array([key.network] * n, pa.string()),
        "processing_date": pa.array([key.processing_date] * n, pa.date32()),
        "window_days": pa.array([key.window_days] * n, pa.uint16()),
    }


def to_raw_table(source: pa.Table, spec: dict[str, str], key: BatchKey, version: int) -> pa.Table:
    n = source.num_rows
    return stamp({**_keyed(key, n), **conform(source, spec)}, n, version)


def feature_names(source: pa.Table) -> list[str]:
    names = []
    for field_ in source.schema:
        kind = field_.type
        if field_.name in KEY_COLUMNS:
            continue
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
                or pa.types.is_decimal(kind):
            names.append(field_.name)
    return names


def to_feature_table(source: pa.Table, key: BatchKey, version: int) -> pa.Table:
    n = source.num_rows
    columns = _keyed(key, n)
    columns["address"] = arrow_column(source, "address", pa.string(), n)
    for name in feature_names(source):
        columns[name] = arrow_column(source, name, pa.float64(), n)
    return stamp(columns, n, version)


def write_batch(store: RawStore, batch: SotBatch, version: int) -> int:
    key = batch.key
    features = batch.tables["features.parquet"]
    store.add_feature_columns(feature_names(features))
    rows = 0
    prepared = [(table, to_raw_table(batch.tables[name], spec, key, version))
                for name, (table, spec) in TABLES.items()]
    prepared.append(("raw_features", to_feature_table(features, key, version)))
    for table, data in prepared:
        store.insert(table, data)
        rows += data.num_rows
    for table, _ in prepared:
        store.delete_superseded(table, key.network, key.processing_date, key.window_days, version)
    store.log_ingest(key.network, key.processing_date, key.window_days, batch.meta_sha256,
                     orjson.dumps(batch.counts).decode(), version)
    return rows


def label_table(network: str, source: pa.Table, version: int) -> pa.Table:
    n = source.num_rows
    columns = {"network": pa.array([network] * n, pa.string()), **conform(source, RAW_LABEL_COLUMNS)}
    return stamp(columns, n, version)


def select(keys: Iterable[BatchKey], networks: set[str] | None, start: dt.date | None,
           end: dt.date | None, window_days: int | None) -> list[BatchKey]:
    return [k for k in keys
            if (not networks or k.network in networks)
            and (start is None or k.processing_date >= start)
            and (end is None or k.processing_date <= end)
            and (window_days is None or k.window_days == window_days)]


def ingest_source(
    store: RawStore,
    fs: pafs.FileSystem,
    root: str,
    *,
    networks: set[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    window_days: int | None = None,
    skip_existing: bool = False,
    on_batch: Callable[[BatchKey, str], None] | None = None,
) -> IngestReport:
    report = IngestReport()
    found, strays = find_batches(fs, root)
    keys = select(found, networks, start, end, window_days)
    for path, why in strays.items():
        if not networks or path.split("/")[0] in networks:
            report.refused[path] = [why]
    # Labels are read and checked before any batch is written: a network whose labels are
    # refused has none of its batches loaded either (exit 1 never means "partly written").
    labels: dict[str, pa.Table] = {}
    refused_networks: set[str] = set()
    for network in sorted({k.network for k in keys} | (networks or set())):
        try:
            table = read_labels(fs, root, network)
        except BatchRejected as exc:
            report.refused[exc.batch] = exc.problems
            refused_networks.add(network)
            continue
        if table is not None:
            labels[network] = table
    for key in keys:
        status = "ingested"
        if key.network in refused_networks:
            report.refused[str(key)] = [f"not loaded: the address labels of {key.network} were refused"]
            status = "refused"
        elif skip_existing and store.ingested(key.network, key.processing_date, key.window_days):
            report.skipped.append(key)
            status = "skipped"
        else:
            try:
                batch = read_batch(fs, root, key)
            except BatchRejected as exc:
                report.refused[str(key)] = exc.problems
                status = "refused"
            else:
                report.rows += write_batch(store, batch, row_version())
                report.ingested.append(key)
        if on_batch is not None:
            on_batch(key, status)
    for network, table in labels.items():
        version = row_version()
        store.replace_labels(network, label_table(network, table, version), version)
        report.labels[network] = table.num_rows
    return report
