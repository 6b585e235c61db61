"""Every table amlscore uses, in one place.

Raw tables mirror the SOT files and are keyed by (network, window_days, processing_date, …); they
are ReplacingMergeTree on ``_version`` (the ingest run), so re-ingesting a batch replaces it.
Output tables are ReplacingMergeTree keyed so that re-scoring one alert with one model version
replaces the row instead of adding one. Read them with FINAL.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier

BATCH_KEY = "network LowCardinality(String), processing_date Date, window_days UInt16"
INGEST_COLUMNS = "_version UInt64, _ingested_at DateTime64(3, 'UTC')"

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


def _columns(spec: dict[str, str]) -> str:
    return ", ".join(f"{name} {ctype}" for name, ctype in spec.items())


def _raw_table(db: str, name: str, spec: dict[str, str], key: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.{name} ({BATCH_KEY}, {_columns(spec)}, {INGEST_COLUMNS}) "
        f"ENGINE = ReplacingMergeTree(_version) PARTITION BY toYYYYMM(processing_date) "
        f"ORDER BY (network, window_days, processing_date, {key})"
    )


def schema_statements(db: str) -> list[str]:
    db = check_identifier(db, "database")
    return [
        _raw_table(db, "raw_alerts", RAW_ALERT_COLUMNS, "alert_id"),
        _raw_table(db, "raw_clusters", RAW_CLUSTER_COLUMNS, "cluster_id"),
        _raw_table(db, "raw_money_flows", RAW_MONEY_FLOW_COLUMNS, "from_address, to_address"),
        # Feature columns vary by source: they are added on ingest as Float64 DEFAULT nan,
        # so a batch that lacks a column reads back NaN for it.
        f"CREATE TABLE IF NOT EXISTS {db}.raw_features ({BATCH_KEY}, address String, "
        f"{INGEST_COLUMNS}) ENGINE = ReplacingMergeTree(_version) "
        f"PARTITION BY toYYYYMM(processing_date) "
        f"ORDER BY (network, window_days, processing_date, address)",
        f"CREATE TABLE IF NOT EXISTS {db}.raw_address_labels (network LowCardinality(String), "
        f"{_columns(RAW_LABEL_COLUMNS)}, {INGEST_COLUMNS}) "
        f"ENGINE = ReplacingMergeTree(_version) ORDER BY (network, address)",
        f"CREATE TABLE IF NOT EXISTS {db}.ingest_log ({BATCH_KEY}, meta_sha256 String, "
        f"counts String, {INGEST_COLUMNS}) ENGINE = ReplacingMergeTree(_version) "
        f"ORDER BY (network, window_days, processing_date)",
        f"CREATE TABLE IF NOT EXISTS {db}.alert_scores ({BATCH_KEY}, alert_id String, "
        f"address String, model_version LowCardinality(String), score Float64, rank_score Float64, "
        f"risk_level LowCardinality(String), explanation String, "
        f"scored_at DateTime64(3, 'UTC'), source LowCardinality(String)) "
        f"ENGINE = ReplacingMergeTree(scored_at) PARTITION BY toYYYYMM(processing_date) "
        f"ORDER BY (network, window_days, processing_date, alert_id, model_version)",
        # A challenger's scores (amlscore shadow): the same rows, never published, never ranked.
        f"CREATE TABLE IF NOT EXISTS {db}.alert_scores_shadow AS {db}.alert_scores",
        f"CREATE TABLE IF NOT EXISTS {db}.cluster_scores ({BATCH_KEY}, cluster_id String, "
        f"model_version LowCardinality(String), score Float64, risk_level LowCardinality(String), "
        f"n_alerts UInt32, n_alerts_found UInt32, scored_at DateTime64(3, 'UTC'), "
        f"source LowCardinality(String)) "
        f"ENGINE = ReplacingMergeTree(scored_at) PARTITION BY toYYYYMM(processing_date) "
        f"ORDER BY (network, window_days, processing_date, cluster_id, model_version)",
        f"CREATE TABLE IF NOT EXISTS {db}.score_runs ({BATCH_KEY}, "
        f"model_version LowCardinality(String), n_alerts UInt64, n_clusters UInt64, "
        f"completed_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree(completed_at) "
        f"ORDER BY (network, window_days, processing_date, model_version)",
        f"CREATE TABLE IF NOT EXISTS {db}.model_registry (model_version String, "
        f"model_name LowCardinality(String), status LowCardinality(String), path String, "
        f"feature_names Array(String), train_start Date, train_end Date, networks Array(String), "
        f"metrics String, data_fingerprint String, registered_at DateTime64(3, 'UTC'), "
        f"updated_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree(updated_at) "
        f"ORDER BY (model_name, model_version)",
        # Rank positions come from a query, never from a stored batch order.
        f"CREATE VIEW IF NOT EXISTS {db}.alert_rankings AS SELECT network, processing_date, "
        f"window_days, model_version, alert_id, address, score, rank_score, risk_level, "
        f"explanation, row_number() OVER (PARTITION BY network, processing_date, window_days, "
        f"model_version ORDER BY rank_score DESC, alert_id) AS rank_position "
        f"FROM {db}.alert_scores FINAL",
    ]


def ensure_schema(client: Client, db: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {check_identifier(db, 'database')}")
    for statement in schema_statements(db):
        client.command(statement)
