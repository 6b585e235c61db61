"""Every table amlscore uses, in one place.

Raw tables mirror the SOT files and are keyed by (network, window_days, processing_date, …); they
are ReplacingMergeTree on ``_version`` (the ingest run), so re-ingesting a batch replaces it.
Output tables are ReplacingMergeTree keyed so that re-scoring one alert with one model version
replaces the row instead of adding one. Read them with FINAL.

The definitions are data (:class:`Table`, :class:`View`): the same declarations create a new
database and tell :mod:`shared.clickhouse.migrations` what an older one lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.clickhouse.connection import check_identifier
from shared.sink import SHADOW_TABLE

BATCH_KEY_COLUMNS = {"network": "LowCardinality(String)", "processing_date": "Date",
                     "window_days": "UInt16"}
INGEST_COLUMN_TYPES = {"_version": "UInt64", "_ingested_at": "DateTime64(3, 'UTC')"}

RAW_ALERT_COLUMNS: dict[str, str] = {
    "alert_id": "String",
    "address": "String",
    "typology_type": "LowCardinality(String)",
    "pattern_id": "String",
    "pattern_type": "LowCardinality(String)",
    "severity": "LowCardinality(String)",
    "suspected_address_type": "LowCardinality(String)",
    "suspected_address_subtype": "String",
    "alert_confidence_score": "Float64",
    "description": "String",
    "volume_usd": "Float64",
    "evidence_json": "String",
    "risk_indicators": "Array(String)",
}
RAW_CLUSTER_COLUMNS: dict[str, str] = {
    "cluster_id": "String",
    "cluster_type": "LowCardinality(String)",
    "primary_address": "String",
    "primary_alert_id": "String",
    "related_alert_ids": "Array(String)",
    "addresses_involved": "Array(String)",
    "total_alerts": "UInt32",
    "total_volume_usd": "Float64",
    "severity_max": "LowCardinality(String)",
    "confidence_avg": "Float64",
}
RAW_MONEY_FLOW_COLUMNS: dict[str, str] = {
    "from_address": "String",
    "to_address": "String",
    "tx_count": "UInt64",
    "amount_usd_sum": "Float64",
    "first_seen_timestamp": "Int64",
    "last_seen_timestamp": "Int64",
    "reciprocity_ratio": "Float64",
    "is_bidirectional": "UInt8",
}
RAW_LABEL_COLUMNS: dict[str, str] = {
    "address": "String",
    "label": "String",
    "address_type": "LowCardinality(String)",
    "risk_level": "LowCardinality(String)",
    "confidence_score": "Float64",
}


# How soon the engine deletes the parts a merge has replaced (MergeTree's defaults: every 30-40 s).
# Every write makes a part, and the stream writes a part per table per micro-batch: at 2,000
# alerts/s thousands of replaced parts pile up between two default cleanups and are deleted at
# once, a stall of every insert meanwhile. Measured (2 cores, features embedded, 2,000/s, p99 of
# three runs each): 241-480 ms with the default, 173-194 ms every 4-5 s, 139-167 ms every 1-2 s.
PART_CLEANUP = {"cleanup_delay_period": "1", "cleanup_delay_period_random_add": "1",
                "max_cleanup_delay_period": "2"}

# How much memory a merge holds (schema 7). A horizontal merge reads every column of every part it
# merges at once, each through buffers of its own, in blocks of 8,192 rows; a vertical merge
# (MergeTree's for 131,072 rows and more) merges the sorting key's columns first, then the other
# columns one at a time. The stream's many small parts are merged horizontally by default, and
# those merges were the worker's memory peaks. Measured on the 2-core box, 1M alerts written as
# 500 micro-batches into raw_alerts and alert_scores (`python -m tests.benchmarks.run merges`):
# the largest merge 145-162 MB with the defaults, 42-64 MB vertical from the first row in blocks
# of 1,024 rows; the engine's tracked memory at most 164 vs 96 MB; the same CPU (merges are half
# of it either way), the same insert latency and about as many active parts.
MERGE_MEMORY = {"vertical_merge_algorithm_min_rows_to_activate": "1",
                "vertical_merge_algorithm_min_columns_to_activate": "1",
                "merge_max_block_size": "1024"}

# How many times a row is merged again (schema 8). MergeTree's merge selector joins parts whose
# sizes are within a ratio, its base (5 by default); the stream writes a small part per table per
# micro-batch, so each row is rewritten about log_base(final part / micro-batch) times. Base 10
# rewrites it fewer times for a few more parts at rest. Measured on the 2-core box with the merges
# suite's writes (`python -m tests.benchmarks.run merges`): micro-batches of 100, the merge
# threads' CPU 11.4-11.8 → 4.1-4.3 s for 30,000 alerts (most active parts 17 → 24-27, after 12 →
# 14, insert p50/p99 unchanged); micro-batches of 2,000, 12.2 → 8.3 s for 300,000 alerts (parts
# after 18 → 25). Base 20 saved little more (2.9-3.5 s) for twice the parts.
MERGE_SELECTION = {"merge_selector_base": "10"}


@dataclass(frozen=True)
class Table:
    """One table as this release defines it; :mod:`shared.clickhouse.migrations` brings a
    database made by an earlier release up to it (tables and columns added, nothing dropped)."""

    name: str
    columns: dict[str, str]
    engine: str
    order_by: str
    partition_by: str | None = None
    since: int = 1                      # the schema version that added the table
    fill: str | None = None             # run once when a migration creates it: data it derives
    defaults: dict[str, str] = field(default_factory=dict)  # for columns added to old tables
    indexes: dict[str, str] = field(default_factory=dict)   # data-skipping index → its definition
    retired: int = 0                    # the schema version that stopped using it (0: in use)
    settings: dict[str, str] = field(default_factory=lambda: {**PART_CLEANUP, **MERGE_MEMORY, **MERGE_SELECTION})  # MergeTree's

    def create(self, db: str) -> str:
        columns = ", ".join([f"{name} {kind}" + (f" DEFAULT {self.defaults[name]}"
                                                 if name in self.defaults else "")
                             for name, kind in self.columns.items()]
                            + [f"INDEX {name} {definition}" for name, definition in self.indexes.items()])
        partition = f" PARTITION BY {self.partition_by}" if self.partition_by else ""
        settings = ", ".join(f"{name} = {value}" for name, value in self.settings.items())
        return (f"CREATE TABLE IF NOT EXISTS {db}.{self.name} ({columns}) ENGINE = {self.engine}"
                f"{partition} ORDER BY ({self.order_by})" + (f" SETTINGS {settings}" if settings else ""))


@dataclass(frozen=True)
class View:
    name: str
    select: str                         # with {db} where the database goes
    materialized_to: str | None = None  # a materialized view writing into that table
    since: int = 1
    changed: int = 0                    # the schema version that last changed a plain view's query
    retired: int = 0                    # the schema version that dropped it (0: in use)

    def create(self, db: str) -> str:
        kind = "MATERIALIZED VIEW" if self.materialized_to else "VIEW"
        target = f" TO {db}.{self.materialized_to}" if self.materialized_to else ""
        return f"CREATE {kind} IF NOT EXISTS {db}.{self.name}{target} AS {self.select.format(db=db)}"


def _keyed(**columns: str) -> dict[str, str]:
    return {**BATCH_KEY_COLUMNS, **columns}


def _raw(name: str, spec: dict[str, str], key: str) -> Table:
    return Table(name, {**BATCH_KEY_COLUMNS, **spec, **INGEST_COLUMN_TYPES},
                 "ReplacingMergeTree(_version)", f"network, window_days, processing_date, {key}",
                 "toYYYYMM(processing_date)")


ALERT_SCORE_COLUMNS = _keyed(
    alert_id="String", address="String", model_version="LowCardinality(String)", score="Float64",
    rank_score="Float64", risk_level="LowCardinality(String)", explanation="String",
    scored_at="DateTime64(3, 'UTC')", source="LowCardinality(String)", qc_sample="Bool")
# qc_sample came with schema 3: rows scored before it read back false (no QC sample then).
SCORE_DEFAULTS = {"qc_sample": "false"}
DISPOSITION_COLUMNS = {
    "alert_id": "String", "disposition": "LowCardinality(String)", "analyst": "String",
    "decided_at": "DateTime64(3, 'UTC')", "note": "String", "sar_filed": "Bool",
    "source": "LowCardinality(String)", "recorded_at": "DateTime64(3, 'UTC')"}
SCORE_ORDER = "network, window_days, processing_date, alert_id, model_version"
MONTHLY = "toYYYYMM(processing_date)"
ALERT_ID_INDEX = "alert_id_bloom"

TABLES: tuple[Table, ...] = (
    _raw("raw_alerts", RAW_ALERT_COLUMNS, "alert_id"),
    _raw("raw_clusters", RAW_CLUSTER_COLUMNS, "cluster_id"),
    _raw("raw_money_flows", RAW_MONEY_FLOW_COLUMNS, "from_address, to_address"),
    # Feature columns vary by source: they are added on ingest as Float64 DEFAULT nan, so a
    # batch that lacks a column reads back NaN for it.
    _raw("raw_features", {"address": "String"}, "address"),
    Table("raw_address_labels", {"network": "LowCardinality(String)", **RAW_LABEL_COLUMNS,
                                 **INGEST_COLUMN_TYPES},
          "ReplacingMergeTree(_version)", "network, address"),
    Table("ingest_log", _keyed(meta_sha256="String", counts="String", **INGEST_COLUMN_TYPES),
          "ReplacingMergeTree(_version)", "network, window_days, processing_date"),
    # GET /alerts/{id} reads only the granules whose bloom filter may hold the id (schema 5):
    # an index lives inside each part, so a write adds no part of its own.
    Table("alert_scores", ALERT_SCORE_COLUMNS, "ReplacingMergeTree(scored_at)", SCORE_ORDER, MONTHLY,
          defaults=SCORE_DEFAULTS, indexes={ALERT_ID_INDEX: "alert_id TYPE bloom_filter(0.001) GRANULARITY 1"}),
    # A challenger's scores (amlscore shadow): the same rows, never published, never ranked.
    Table(SHADOW_TABLE, ALERT_SCORE_COLUMNS, "ReplacingMergeTree(scored_at)", SCORE_ORDER,
          MONTHLY, defaults=SCORE_DEFAULTS),
    Table("cluster_scores", _keyed(
        cluster_id="String", model_version="LowCardinality(String)", score="Float64",
        risk_level="LowCardinality(String)", n_alerts="UInt32", n_alerts_found="UInt32",
        scored_at="DateTime64(3, 'UTC')", source="LowCardinality(String)"),
        "ReplacingMergeTree(scored_at)", "network, window_days, processing_date, cluster_id, model_version",
        MONTHLY),
    Table("score_runs", _keyed(model_version="LowCardinality(String)", n_alerts="UInt64",
                               n_clusters="UInt64", completed_at="DateTime64(3, 'UTC')"),
          "ReplacingMergeTree(completed_at)", "network, window_days, processing_date, model_version"),
    Table("model_registry", {
        "model_version": "String", "model_name": "LowCardinality(String)",
        "status": "LowCardinality(String)", "path": "String", "feature_names": "Array(String)",
        "train_start": "Date", "train_end": "Date", "networks": "Array(String)", "metrics": "String",
        "data_fingerprint": "String", "registered_at": "DateTime64(3, 'UTC')",
        "updated_at": "DateTime64(3, 'UTC')"},
        "ReplacingMergeTree(updated_at)", "model_name, model_version"),
    # Clusters the stream acknowledged without scoring them (the version in use has no
    # cluster_scorer): kept whole with the reason, so nothing acknowledged lives only in Kafka.
    Table("unscored_clusters", _keyed(**RAW_CLUSTER_COLUMNS, model_version="LowCardinality(String)",
                                      reason="String", received_at="DateTime64(3, 'UTC')"),
          "ReplacingMergeTree(received_at)", "network, window_days, processing_date, cluster_id",
          MONTHLY, since=2),
    # Investigators' decisions, every one kept (the latest by a given time is the alert's label as
    # of that time; the others are its audit trail). A redelivered decision has the same key and
    # replaces itself instead of adding a row.
    Table("alert_dispositions", _keyed(**DISPOSITION_COLUMNS), "ReplacingMergeTree(recorded_at)",
          "network, window_days, processing_date, alert_id, decided_at, analyst", MONTHLY, since=4),
    # Schemas 2-4 kept, keyed by alert_id, where each alert's scores are (filled by
    # alert_lookup_mv on every insert: a third ClickHouse part per micro-batch, and its merges).
    # Schema 5 finds an alert through alert_scores' bloom-filter index instead; databases that
    # have the table keep it (its rows are never dropped), nothing reads or writes it any more.
    Table("alert_lookup", {"alert_id": "String", **BATCH_KEY_COLUMNS,
                           "model_version": "LowCardinality(String)"},
          "ReplacingMergeTree", "alert_id, network, window_days, processing_date, model_version",
          since=2, retired=5),
)

VIEWS: tuple[View, ...] = (
    # Rank positions come from a query, never from a stored batch order.
    View("alert_rankings", "SELECT network, processing_date, window_days, model_version, alert_id, "
         "address, score, rank_score, risk_level, explanation, qc_sample, row_number() OVER "
         "(PARTITION BY network, processing_date, window_days, model_version ORDER BY rank_score "
         "DESC, alert_id) AS rank_position FROM {db}.alert_scores FINAL", changed=3),
    View("alert_lookup_mv", "SELECT alert_id, network, processing_date, window_days, model_version "
         "FROM {db}.alert_scores", materialized_to="alert_lookup", since=2, retired=5),
)


def table(name: str) -> Table:
    return next(t for t in TABLES if t.name == name)


def schema_statements(db: str) -> list[str]:
    """Every CREATE of this release, tables before the views that read them."""
    db = check_identifier(db, "database")
    return ([t.create(db) for t in TABLES if not t.retired]
            + [v.create(db) for v in VIEWS if not v.retired])
