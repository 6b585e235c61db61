"""Cluster features: the cluster's own columns plus its member alerts' features aggregated.

Members are ``related_alert_ids`` ∪ ``primary_alert_id``, taken in sorted id order so that the
aggregate is the same however the members arrived (bit-identical in stream and backfill).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.columns import as_floats, one_hot, vocabulary
from shared.features import SEVERITY_RANK

CLUSTER_NUMERIC = ("total_alerts", "total_volume_usd", "confidence_avg")
AGGREGATES = ("max", "mean")


@dataclass(frozen=True)
class ClusterFeatureSpec:
    alert_feature_names: tuple[str, ...]
    cluster_types: tuple[str, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [*CLUSTER_NUMERIC, "severity_max_rank", "n_addresses", "n_alerts_found"]
        names += [f"cluster_type={value}" for value in self.cluster_types]
        names += [f"{agg}:{name}" for agg in AGGREGATES for name in self.alert_feature_names]
        object.__setattr__(self, "names", tuple(names))

    def to_dict(self) -> dict:
        return {
            "alert_feature_names": list(self.alert_feature_names),
            "cluster_types": list(self.cluster_types),
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ClusterFeatureSpec:
        spec = cls(tuple(data["alert_feature_names"]), tuple(data["cluster_types"]))
        if "names" in data and tuple(data["names"]) != spec.names:
            raise ValueError("cluster feature spec names do not match its vocabulary")
        return spec


def fit_cluster_spec(clusters: pd.DataFrame, alert_feature_names: tuple[str, ...]) -> ClusterFeatureSpec:
    types = vocabulary(clusters["cluster_type"]) if "cluster_type" in clusters else ()
    return ClusterFeatureSpec(tuple(alert_feature_names), types)


def _listlike(value: object) -> list[str]:
    if value is None or isinstance(value, float | str):
        return []
    return [str(v) for v in value]  # type: ignore[union-attr]


def cluster_members(clusters: pd.DataFrame) -> list[list[str]]:
    """Sorted, de-duplicated member alert ids of each cluster."""
    n = len(clusters)
    related = clusters["related_alert_ids"].tolist() if "related_alert_ids" in clusters else [None] * n
    primary = clusters["primary_alert_id"].tolist() if "primary_alert_id" in clusters else [None] * n
    members = []
    for ids, head in zip(related, primary, strict=True):
        found = set(_listlike(ids))
        if isinstance(head, str) and head:
            found.add(head)
        members.append(sorted(found))
    return members


def build_cluster_matrix(
    spec: ClusterFeatureSpec,
    clusters: pd.DataFrame,
    alert_ids: pd.Index,
    alert_matrix: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (matrix with columns ``spec.names``, members found per cluster).

    ``alert_ids`` labels the rows of ``alert_matrix`` (built with the alert FeatureSpec whose
    names are ``spec.alert_feature_names``).
    """
    n = len(clusters)
    width = len(spec.alert_feature_names)
    if alert_matrix.shape[1] != width:
        raise ValueError("alert matrix does not match the cluster spec's alert features")
    members = cluster_members(clusters)
    cluster_index = np.repeat(np.arange(n), [len(m) for m in members])
    flat = [alert_id for m in members for alert_id in m]
    rows = alert_ids.get_indexer(flat) if flat else np.empty(0, dtype=np.int64)
    found = rows >= 0
    found_per_cluster = np.bincount(cluster_index[found], minlength=n).astype(np.float32)

    aggregated = np.full((n, len(AGGREGATES) * width), np.nan, dtype=np.float32)
    if found.any():
        member_frame = pd.DataFrame(alert_matrix[rows[found]].astype(np.float64))
        grouped = member_frame.groupby(cluster_index[found], sort=True)
        for k, agg in enumerate(AGGREGATES):
            values = grouped.agg(agg)
            aggregated[values.index.to_numpy(), k * width : (k + 1) * width] = values.to_numpy(
                dtype=np.float32
            )

    own = np.full((n, len(CLUSTER_NUMERIC) + 3), np.nan, dtype=np.float32)
    for j, column in enumerate(CLUSTER_NUMERIC):
        if column in clusters:
            own[:, j] = as_floats(clusters[column])
    if "severity_max" in clusters:
        own[:, 3] = clusters["severity_max"].map(SEVERITY_RANK).to_numpy(np.float64, na_value=np.nan)
    if "addresses_involved" in clusters:
        own[:, 4] = clusters["addresses_involved"].map(lambda v: len(_listlike(v))).to_numpy()
    own[:, 5] = found_per_cluster
    types = (
        one_hot(clusters["cluster_type"], spec.cluster_types)
        if "cluster_type" in clusters
        else np.full((n, len(spec.cluster_types)), np.nan, dtype=np.float32)
    )
    matrix = np.hstack([own, types, aggregated]).astype(np.float32, copy=False)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix, found_per_cluster.astype(np.int64)
