import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from batch.sot_reader import BatchKey, discover_batches, open_source, read_batch, read_labels
from shared.errors import BatchRejected
from tests.sot_helpers import batch_dirs, clone, read, rewrite, to_md5_meta


@pytest.fixture
def source(small_sot, tmp_path):
    return clone(small_sot, tmp_path / "sot")


def _key(batch):
    return BatchKey("ethereum", dt.date.fromisoformat(batch.parent.name), 7)


def _refusal(source, batch) -> str:
    fs, root = open_source(str(source))
    with pytest.raises(BatchRejected) as info:
        read_batch(fs, root, _key(batch))
    return str(info.value)


def test_discovers_and_reads_a_valid_batch(source):
    fs, root = open_source(str(source))
    keys = discover_batches(fs, root)
    assert len(keys) == 6 and keys[0].network == "ethereum"
    batch = read_batch(fs, root, keys[0])
    assert batch.counts["alerts"] == batch.tables["alerts.parquet"].num_rows > 0
    assert read_labels(fs, root, "ethereum").num_rows > 0
    assert read_labels(fs, root, "bitcoin") is None


def test_md5_meta_form_is_accepted(source):
    batch = batch_dirs(source)[0]
    to_md5_meta(batch)
    fs, root = open_source(str(source))
    assert read_batch(fs, root, _key(batch)).counts["alerts"] > 0


def test_missing_file(source):
    batch = batch_dirs(source)[0]
    (batch / "clusters.parquet").unlink()
    assert "clusters.parquet is missing" in _refusal(source, batch)


def test_missing_column(source):
    batch = batch_dirs(source)[0]
    rewrite(batch, "alerts.parquet", read(batch, "alerts.parquet").drop_columns(["typology_type"]))
    assert "required column 'typology_type' is missing" in _refusal(source, batch)


def test_wrong_type(source):
    batch = batch_dirs(source)[0]
    alerts = read(batch, "alerts.parquet")
    index = alerts.column_names.index("volume_usd")
    rewrite(batch, "alerts.parquet", alerts.set_column(index, "volume_usd", pc.cast(alerts["volume_usd"], pa.string())))
    message = _refusal(source, batch)
    assert "'volume_usd' has type string, expected number" in message


def test_checksum_mismatch(source):
    batch = batch_dirs(source)[0]
    alerts = read(batch, "alerts.parquet")
    rewrite(batch, "alerts.parquet", alerts.slice(1), fix_meta=False)
    assert "alerts.parquet: sha256 checksum mismatch" in _refusal(source, batch)


def test_several_problems_are_reported_together(source):
    batch = batch_dirs(source)[0]
    (batch / "money_flows.parquet").unlink()
    rewrite(batch, "features.parquet", read(batch, "features.parquet").drop_columns(["address"]))
    message = _refusal(source, batch)
    assert "money_flows.parquet is missing" in message and "'address' is missing" in message


def test_key_and_uniqueness_and_count_checks(source):
    first, second = batch_dirs(source)[:2]
    other_day = read(second, "alerts.parquet")
    rewrite(first, "alerts.parquet", other_day)
    assert "does not match the batch date" in _refusal(source, first)
    alerts = read(second, "alerts.parquet")
    rewrite(second, "alerts.parquet", pa.concat_tables([alerts, alerts.slice(0, 1)]))
    assert "alert_id is not unique" in _refusal(source, second)


def test_meta_missing_or_unreadable(source):
    batch = batch_dirs(source)[0]
    (batch / "META.json").write_text("{not json")
    assert "META.json is not valid JSON" in _refusal(source, batch)
    (batch / "META.json").unlink()
    assert "META.json is missing" in _refusal(source, batch)


def test_bad_labels_are_refused(source):
    path = source / "address-labels" / "ethereum_address_labels.parquet"
    import pyarrow.parquet as pq
    labels = pq.read_table(path)
    index = labels.column_names.index("risk_level")
    pq.write_table(labels.set_column(index, "risk_level", pa.array(["severe"] * labels.num_rows)), path)
    fs, root = open_source(str(source))
    with pytest.raises(BatchRejected, match="unknown risk_level"):
        read_labels(fs, root, "ethereum")
