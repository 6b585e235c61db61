"""Ingest on the embedded ClickHouse: broken batches leave nothing, re-ingest replaces."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from batch.ingest import ingest_source
from batch.sot_reader import open_source
from shared.clickhouse.raw_store import RAW_TABLES, RawStore
from tests.sot_helpers import batch_dirs, clone, read, rewrite

pytestmark = pytest.mark.integration


def _day(batch) -> dt.date:
    return dt.date.fromisoformat(batch.parent.name)


def _rows(raw: RawStore, day: dt.date) -> dict[str, int]:
    return {table: raw.count(table, "ethereum", day, 7) for table in RAW_TABLES}


def _ingest(raw, source, **kwargs):
    fs, root = open_source(str(source))
    return ingest_source(raw, fs, root, **kwargs)


def test_broken_batches_leave_no_rows_and_the_rest_loads(chdb_client, database, small_sot, tmp_path):
    source = clone(small_sot, tmp_path / "sot")
    batches = batch_dirs(source)
    (batches[0] / "features.parquet").unlink()                                      # missing file
    rewrite(batches[1], "alerts.parquet", read(batches[1], "alerts.parquet").drop_columns(["address"]))  # missing column
    alerts = read(batches[2], "alerts.parquet")                                     # wrong type
    i = alerts.column_names.index("severity")
    rewrite(batches[2], "alerts.parquet", alerts.set_column(i, "severity", pa.array([1] * alerts.num_rows)))
    rewrite(batches[3], "clusters.parquet", read(batches[3], "clusters.parquet").slice(1), fix_meta=False)  # checksum
    raw = RawStore(chdb_client, database)
    report = _ingest(raw, source)
    assert len(report.refused) == 4
    assert "features.parquet is missing" in report.refused[f"ethereum/{_day(batches[0])}/7"][0]
    for batch in batches[:4]:
        assert _rows(raw, _day(batch)) == dict.fromkeys(RAW_TABLES, 0)
        assert not raw.ingested("ethereum", _day(batch), 7)
    for batch in batches[4:]:
        assert all(n > 0 for n in _rows(raw, _day(batch)).values())
    assert report.labels["ethereum"] > 0


def test_reingest_replaces_and_skip_existing_skips(chdb_client, database, small_sot, tmp_path):
    source = clone(small_sot, tmp_path / "sot")
    raw = RawStore(chdb_client, database)
    first = _ingest(raw, source)
    batch = batch_dirs(source)[0]
    day = _day(batch)
    before = _rows(raw, day)
    alerts = read(batch, "alerts.parquet")
    dropped_id = alerts["alert_id"][0].as_py()
    rewrite(batch, "alerts.parquet", alerts.slice(1))
    again = _ingest(raw, source, start=day, end=day)
    assert again.ingested and not again.refused
    after = _rows(raw, day)
    assert after["raw_alerts"] == before["raw_alerts"] - 1
    assert after["raw_features"] == before["raw_features"]
    ids = set(raw.alerts("ethereum", day, 7)["alert_id"])
    assert dropped_id not in ids and len(ids) == after["raw_alerts"]
    skipped = _ingest(raw, source, skip_existing=True)
    assert len(skipped.skipped) == len(first.ingested) and not skipped.ingested


def test_feature_columns_may_come_and_go(chdb_client, database, small_sot, tmp_path):
    source = clone(small_sot, tmp_path / "sot")
    first, second = batch_dirs(source)[:2]
    features = read(second, "features.parquet")
    rewrite(second, "features.parquet",
            features.drop_columns(["pagerank"]).append_column("hop2_count", features["kcore"]))
    raw = RawStore(chdb_client, database)
    assert _ingest(raw, source).ok
    old = raw.features("ethereum", _day(first), 7)
    new = raw.features("ethereum", _day(second), 7)
    assert old["hop2_count"].isna().all()
    assert new["pagerank"].isna().all() and new["hop2_count"].notna().any()
