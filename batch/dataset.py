"""Training data from ClickHouse: alerts, their address features, clusters, and labels.

Labels: risk_level high/critical → 1, low/medium → 0, unlabelled → NaN (not used
for training). Labels join on (network, address) and never enter the feature matrix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.clickhouse.raw_store import RawStore
from shared.cluster_features import cluster_members
from shared.features import ALERT_SCORING_COLUMNS, normalise_keys

POSITIVE_LEVELS = ("high", "critical")


@dataclass
class TrainingData:
    alerts: pd.DataFrame    # one row per alert, keys normalised, with a `label` column
    features: pd.DataFrame  # address features, keys normalised
    clusters: pd.DataFrame  # one row per cluster, keys normalised, with a `label` column


def label_alerts(alerts: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    if not len(labels):
        return np.full(len(alerts), np.nan)
    target = labels.assign(label=labels["risk_level"].isin(POSITIVE_LEVELS).astype(float))
    target = target.drop_duplicates(["network", "address"], keep="last")
    merged = alerts[["network", "address"]].astype(str).merge(
        target[["network", "address", "label"]].astype({"network": str, "address": str}),
        on=["network", "address"], how="left", sort=False)
    return merged["label"].to_numpy(dtype=np.float64)


def label_clusters(clusters: pd.DataFrame, alerts: pd.DataFrame) -> np.ndarray:
    """Any member positive → 1; else any member labelled → 0; else NaN."""
    if not len(clusters):
        return np.empty(0)
    key = alerts["network"] + "|" + alerts["processing_date"] + "|" + alerts["alert_id"].astype(str)
    by_id = pd.Series(alerts["label"].to_numpy(), index=key)
    by_id = by_id[~by_id.index.duplicated(keep="last")]
    members = cluster_members(clusters)
    prefixes = (clusters["network"] + "|" + clusters["processing_date"] + "|").tolist()
    owner = np.repeat(np.arange(len(clusters)), [len(m) for m in members])
    keys = [prefix + m for prefix, ids in zip(prefixes, members, strict=True) for m in ids]
    member_labels = by_id.reindex(keys).to_numpy(dtype=np.float64)
    # max() skips NaN: any positive member → 1, else any labelled member → 0, else NaN
    per_cluster = pd.Series(member_labels).groupby(owner).max()
    out = np.full(len(clusters), np.nan)
    out[per_cluster.index.to_numpy()] = per_cluster.to_numpy()
    return out


def load_training_data(store: RawStore, networks: Sequence[str], start: dt.date, end: dt.date,
                       window_days: int) -> TrainingData:
    alerts = normalise_keys(store.range_frame("raw_alerts", networks, start, end, window_days,
                                              columns=ALERT_SCORING_COLUMNS))
    features = normalise_keys(store.range_frame("raw_features", networks, start, end, window_days))
    clusters = normalise_keys(store.range_frame("raw_clusters", networks, start, end, window_days))
    alerts["label"] = label_alerts(alerts, store.labels(networks))
    clusters["label"] = label_clusters(clusters, alerts)
    return TrainingData(alerts, features, clusters)
