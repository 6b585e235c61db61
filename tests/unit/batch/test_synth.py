import hashlib
import uuid

import orjson
import pandas as pd
import pyarrow.parquet as pq

from batch.synth import SynthConfig, generate
from tests.conftest import SMALL_START


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, small_sot):
    again = tmp_path / "again"
    generate(SynthConfig(out=again, start=SMALL_START, days=2, alerts_per_day=600, seed=11))
    first_day = f"ethereum/{SMALL_START.isoformat()}/7"
    for name in ("alerts.parquet", "features.parquet", "META.json", "_truth.parquet"):
        assert (again / first_day / name).read_bytes() == (small_sot / first_day / name).read_bytes()
    other = tmp_path / "other"
    generate(SynthConfig(out=other, start=SMALL_START, days=1, alerts_per_day=600, seed=12))
    assert (other / first_day / "alerts.parquet").read_bytes() != (small_sot / first_day / "alerts.parquet").read_bytes()


def test_meta_checksums_counts_and_alert_ids(small_sot):
    batch = small_sot / f"ethereum/{SMALL_START.isoformat()}/7"
    meta = orjson.loads((batch / "META.json").read_bytes())
    for name, digest in meta["sha256"].items():
        assert hashlib.sha256((batch / name).read_bytes()).hexdigest() == digest
    alerts = pq.read_table(batch / "alerts.parquet").to_pandas()
    assert meta["counts"]["alerts"] == len(alerts)
    row = alerts.iloc[0]
    expected = uuid.uuid5(uuid.NAMESPACE_DNS, f"{row.address}-{row.typology_type}-{SMALL_START.isoformat()}")
    assert row.alert_id == str(expected)
    assert "_truth.parquet" not in meta["sha256"]


def test_realistic_shape(sot_frames):
    alerts, features, clusters, labels = sot_frames
    assert 500 <= alerts.groupby("processing_date").size().min() <= 700
    assert alerts["typology_type"].nunique() >= 10
    assert set(alerts["severity"]) == {"low", "medium", "high", "critical"}
    # addresses recur across days
    days_per_address = alerts.groupby("address")["processing_date"].nunique()
    assert (days_per_address > 1).mean() > 0.1
    # heavy tails and missing values
    volume = alerts["volume_usd"]
    assert volume.quantile(0.99) > 20 * volume.median()
    assert features["velocity_score"].isna().mean() > 0.01
    # a minority labelled, a few percent positive among them
    share_labelled = alerts["address"].isin(labels["address"]).mean()
    assert 0.2 < share_labelled < 0.5
    positive = labels["risk_level"].isin(["high", "critical"]).mean()
    assert 0.02 < positive < 0.1


def test_clusters_are_same_entity_groups(sot_frames):
    alerts, _, clusters, _ = sot_frames
    per_day_address = alerts.groupby(["processing_date", "address"]).size()
    assert len(clusters) == int((per_day_address >= 2).sum())
    by_id = alerts.set_index("alert_id")
    for _, cluster in clusters.head(50).iterrows():
        members = by_id.loc[list(cluster.related_alert_ids)]
        assert (members["address"] == cluster.primary_address).all()
        assert len(members) == cluster.total_alerts >= 2
        assert cluster.primary_alert_id in set(cluster.related_alert_ids)


def test_truth_sits_beside_each_batch(small_sot, sot_frames):
    alerts = sot_frames[0]
    truth = pd.concat([pq.read_table(p).to_pandas() for p in small_sot.glob("ethereum/*/7/_truth.parquet")])
    assert set(truth["alert_id"]) == set(alerts["alert_id"])
    assert truth["p_illicit"].between(0, 1).all()
    assert "p_illicit" not in alerts.columns
