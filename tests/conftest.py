"""Fixtures shared by unit and integration tests.

The embedded ClickHouse (chdb) allows one data directory per process, so the whole test session
shares one; each test gets a database of its own instead.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch.models import fit_binary, fit_ranker
from batch.synth import SynthConfig, generate
from shared.cluster_features import build_cluster_matrix, fit_cluster_spec
from shared.features import build_alert_matrix, fit_feature_spec
from shared.registry import DirectoryModelRegistry, ModelBundle

SMALL_START = dt.date(2025, 3, 1)


@pytest.fixture(scope="session")
def chdb_client(tmp_path_factory):
    from shared.clickhouse.connection import connect, parse_clickhouse_url

    path = tmp_path_factory.mktemp("chdb")
    return connect(parse_clickhouse_url(f"chdb://{path}", "amlscore_session"))


@pytest.fixture
def database(chdb_client):
    """A fresh, schema-initialised database on the session's embedded ClickHouse."""
    from shared.clickhouse.migrations import ensure_schema

    name = f"t_{uuid.uuid4().hex[:12]}"
    ensure_schema(chdb_client, name)
    yield name
    chdb_client.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="session")
def small_sot(tmp_path_factory) -> Path:
    """6 days × ~600 alerts of one network: enough to fit small models, quick to make."""
    out = tmp_path_factory.mktemp("sot_small")
    generate(SynthConfig(out=out, start=SMALL_START, days=6, alerts_per_day=600, seed=11))
    return out


def read_sot_frames(root: Path, network: str = "ethereum"):
    """Alerts, features and clusters of every batch under root, straight from Parquet."""
    alerts, features, clusters = [], [], []
    for day in sorted((root / network).iterdir()):
        batch = day / "7"
        a = pq.read_table(batch / "alerts.parquet").to_pandas()
        f = pq.read_table(batch / "features.parquet").to_pandas()
        c = pq.read_table(batch / "clusters.parquet").to_pandas()
        for frame in (a, f, c):
            frame["network"] = network
            frame["processing_date"] = day.name
            frame["window_days"] = 7
        alerts.append(a)
        features.append(f)
        clusters.append(c)
    labels = pq.read_table(root / "address-labels" / f"{network}_address_labels.parquet").to_pandas()
    return (pd.concat(alerts, ignore_index=True), pd.concat(features, ignore_index=True),
            pd.concat(clusters, ignore_index=True), labels)


@pytest.fixture(scope="session")
def sot_frames(small_sot):
    return read_sot_frames(small_sot)


@pytest.fixture(scope="session")
def bundle(small_sot, sot_frames, tmp_path_factory) -> ModelBundle:
    """Three small real models trained on the small synthetic SOT, saved and loaded back."""
    alerts, features, clusters, labels = sot_frames
    target = labels.assign(y=labels["risk_level"].isin(["high", "critical"]).astype(float))
    y = alerts[["address"]].merge(target[["address", "y"]], on="address", how="left")["y"].to_numpy()
    spec = fit_feature_spec(alerts, features)
    x = build_alert_matrix(spec, alerts, features)
    mask = ~np.isnan(y)
    names = list(spec.names)
    scorer = fit_binary(x[mask], y[mask], None, None, names, seed=1, threads=1)
    qid = pd.factorize(alerts["processing_date"])[0]
    ranker = fit_ranker(x[mask], y[mask], qid[mask], None, None, None, names, seed=1, threads=1)
    cluster_spec = fit_cluster_spec(clusters, spec.names)
    cx = np.vstack([
        build_cluster_matrix(cluster_spec, clusters[clusters.processing_date == d],
                             pd.Index(alerts.alert_id[alerts.processing_date == d]),
                             x[(alerts.processing_date == d).to_numpy()])[0]
        for d in sorted(clusters.processing_date.unique())
    ])
    cy = np.resize(np.array([0.0, 1.0]), len(cx))  # the cluster model only needs to exist here
    cluster_model = fit_binary(cx, cy, None, None, list(cluster_spec.names), seed=1, threads=1)
    registry = DirectoryModelRegistry(tmp_path_factory.mktemp("models"))
    meta = {"feature_spec": spec.to_dict(), "feature_names": names}
    registry.save("v-test", "alert_scorer", scorer.booster, meta)
    registry.save("v-test", "alert_ranker", ranker.booster, meta)
    registry.save("v-test", "cluster_scorer", cluster_model.booster,
                  {"cluster_spec": cluster_spec.to_dict(), "feature_names": list(cluster_spec.names)})
    registry.promote("v-test")
    return registry.load_current()
