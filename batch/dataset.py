"""Training data from ClickHouse: alerts, their address features, clusters, and labels.

An alert's label comes from one of two sources (:class:`Labels` says which may be used):

- its **disposition**, the investigators' latest decision on it made by the labels' ``as_of``
  time: true_positive / escalated / a SAR filed → 1, false_positive → 0, inconclusive → none;
- its **address's label** in the address-label file: risk_level high/critical → 1, low/medium → 0.

A disposition takes precedence over the address's label; an alert with neither is unlabelled
(NaN, not used for training). A decision made after ``as_of`` is never read. Labels never enter
the feature matrix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from shared.clickhouse.disposition_store import DispositionStore
from shared.clickhouse.raw_store import RawStore
from shared.cluster_features import member_table
from shared.columns import joint_codes, normalise_keys
from shared.features import ALERT_SCORING_COLUMNS
from shared.schemas import disposition_label

POSITIVE_LEVELS = ("high", "critical")
LabelUse = Literal["addresses", "dispositions", "both"]


@dataclass(frozen=True)
class Labels:
    """Which labels a run may use, and as of when (decisions made later do not exist for it)."""

    use: LabelUse = "addresses"
    as_of: dt.datetime | None = None           # None: now
    dispositions: DispositionStore | None = None

    def moment(self) -> dt.datetime:
        return self.as_of or dt.datetime.now(dt.UTC)


@dataclass
class TrainingData:
    alerts: pd.DataFrame    # one row per alert, keys normalised, with `label` and `label_source`
    features: pd.DataFrame  # address features, keys normalised
    clusters: pd.DataFrame  # one row per cluster, keys normalised (training labels them: label_clusters)
    label_counts: dict = field(default_factory=dict)  # labelled alerts per source, and the as-of time


def label_alerts(alerts: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    if not len(labels):
        return np.full(len(alerts), np.nan)
    target = labels.assign(label=labels["risk_level"].isin(POSITIVE_LEVELS).astype(float))
    target = target.drop_duplicates(["network", "address"], keep="last")
    merged = alerts[["network", "address"]].astype(str).merge(
        target[["network", "address", "label"]].astype({"network": str, "address": str}),
        on=["network", "address"], how="left", sort=False)
    return merged["label"].to_numpy(dtype=np.float64)


def label_from_dispositions(alerts: pd.DataFrame, decisions: pd.DataFrame) -> np.ndarray:
    """Each alert's label from its latest decision (NaN: none, or inconclusive)."""
    if not len(decisions) or not len(alerts):
        return np.full(len(alerts), np.nan)
    decided = normalise_keys(decisions)
    decided["label"] = [disposition_label(d, bool(s)) for d, s in
                        zip(decided["disposition"], decided["sar_filed"], strict=True)]
    keys = ["network", "processing_date", "window_days", "alert_id"]
    merged = alerts[keys].astype({"alert_id": str}).merge(
        decided[[*keys, "label"]].astype({"alert_id": str}), on=keys, how="left", sort=False)
    return merged["label"].to_numpy(dtype=np.float64)


def apply_labels(alerts: pd.DataFrame, address_labels: pd.DataFrame, decisions: pd.DataFrame,
                 use: LabelUse) -> tuple[np.ndarray, np.ndarray]:
    """(label, source) per alert: source "disposition", "address" or "" (unlabelled)."""
    n = len(alerts)
    by_address = label_alerts(alerts, address_labels) if use != "dispositions" else np.full(n, np.nan)
    by_decision = label_from_dispositions(alerts, decisions) if use != "addresses" else np.full(n, np.nan)
    decided = ~np.isnan(by_decision)
    label = np.where(decided, by_decision, by_address)
    source = np.where(decided, "disposition", np.where(np.isnan(by_address), "", "address"))
    return label, source


def label_clusters(clusters: pd.DataFrame, alerts: pd.DataFrame) -> np.ndarray:
    """Any member positive → 1; else any member labelled → 0; else NaN. A member is looked up
    among its own batch's alerts, by integer keys (batch, id) rather than joined text."""
    if not len(clusters):
        return np.empty(0)
    members = member_table(clusters)
    alert_batch, cluster_batch = np.zeros(len(alerts), np.int64), np.zeros(len(clusters), np.int64)
    for column in ("network", "processing_date"):
        left, right, n = joint_codes(alerts[column], clusters[column])
        alert_batch, cluster_batch = alert_batch * n + left, cluster_batch * n + right
    alert_id, member_id, ids = joint_codes(alerts["alert_id"], members.ids)
    by_key = pd.Series(alerts["label"].to_numpy(), index=alert_batch * ids + alert_id)
    by_key = by_key[~by_key.index.duplicated(keep="last")]
    member_labels = by_key.reindex(cluster_batch[members.owner] * ids + member_id).to_numpy(dtype=np.float64)
    # max() skips NaN: any positive member → 1, else any labelled member → 0, else NaN
    per_cluster = pd.Series(member_labels).groupby(members.owner).max()
    out = np.full(len(clusters), np.nan)
    out[per_cluster.index.to_numpy()] = per_cluster.to_numpy()
    return out


def load_training_data(store: RawStore, networks: Sequence[str], start: dt.date, end: dt.date,
                       window_days: int, labels: Labels | None = None) -> TrainingData:
    with ThreadPoolExecutor(2, thread_name_prefix="training-read") as pool:
        # The engine answers one query of a client at a time, but a table's conversion to
        # pandas (Arrow's, without Python's lock) overlaps the next table's query.
        reads = [pool.submit(store.range_frame, table, networks, start, end, window_days)
                 for table in ("raw_features", "raw_clusters")]
        alerts = normalise_keys(store.range_frame("raw_alerts", networks, start, end, window_days,
                                                  columns=ALERT_SCORING_COLUMNS))
        features, clusters = (normalise_keys(read.result()) for read in reads)
    labels = labels or Labels()
    as_of = labels.moment()
    decisions = (labels.dispositions.latest(networks, start, end, window_days, as_of)
                 if labels.use != "addresses" and labels.dispositions is not None
                 else pd.DataFrame(columns=["network", "processing_date", "window_days", "alert_id",
                                            "disposition", "sar_filed", "decided_at"]))
    address_labels = store.labels(networks) if labels.use != "dispositions" else pd.DataFrame()
    alerts["label"], alerts["label_source"] = apply_labels(alerts, address_labels, decisions, labels.use)
    counts = {"use": labels.use, "as_of": as_of.isoformat(),
              "dispositions": int((alerts["label_source"] == "disposition").sum()),
              "addresses": int((alerts["label_source"] == "address").sum()),
              "decisions_read": len(decisions)}
    return TrainingData(alerts, features, clusters, counts)
