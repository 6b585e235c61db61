"""Cluster features: the cluster's own columns plus its member alerts' features aggregated.

Members are ``related_alert_ids`` ∪ ``primary_alert_id``, taken in sorted id order so that the
aggregate is the same however the members arrived (bit-identical in stream and backfill).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.columns import (
    as_floats,
    as_objects,
    list_items,
    list_lengths,
    one_hot,
    ranks,
    vocabulary,
)
from shared.features import SEVERITY_RANK
from shared.pandas_gate import load_pandas

if TYPE_CHECKING:
    import pandas as pd

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


@dataclass(frozen=True)
class ClusterMembers:
    """Every cluster's member alert ids, flat: ``ids[owner == k]`` are cluster ``k``'s (its row
    position), sorted and without repeats. Missing ids (None, NaN, '') are no members."""

    owner: np.ndarray   # int64, ascending
    ids: np.ndarray     # str objects
    clusters: int

    def counts(self) -> np.ndarray:
        return np.bincount(self.owner, minlength=self.clusters)


def _texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the present values as text, which were present): None, NaN and '' are not."""
    pd = load_pandas()  # cluster features are built from frames (clusters are few)

    present = (pd.notna(values) & (values != "")) if len(values) else np.empty(0, dtype=bool)
    kept = values[present]
    if pd.api.types.infer_dtype(kept, skipna=False) != "string":
        kept = np.array([v if type(v) is str else str(v) for v in kept], dtype=object)
    return kept, present


def member_table(clusters: pd.DataFrame) -> ClusterMembers:
    """``related_alert_ids`` ∪ ``primary_alert_id`` of each cluster, as text, in one pass over
    the frame (no Python list per cluster)."""
    n = len(clusters)
    owners, ids = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=object)]
    if "related_alert_ids" in clusters:
        _, lengths, items = list_items(clusters["related_alert_ids"])
        texts, present = _texts(items)
        owners.append(np.repeat(np.arange(n), lengths)[present])
        ids.append(texts)
    if "primary_alert_id" in clusters:
        heads = as_objects(clusters["primary_alert_id"])
        is_text = np.fromiter((isinstance(h, str) and h != "" for h in heads), dtype=bool, count=n)
        owners.append(np.flatnonzero(is_text))
        ids.append(heads[is_text])
    owner, flat = np.concatenate(owners), np.concatenate(ids)
    if not len(flat):
        return ClusterMembers(owner, flat, n)
    # Each cluster's members in id order (UTF-8 byte order is Python's code-point order), the
    # order its aggregates are taken in, so that stream and backfill sum them alike.
    order = pc.sort_indices(pa.table({"owner": owner, "id": pa.array(flat, type=pa.string())}),
                            sort_keys=[("owner", "ascending"), ("id", "ascending")]).to_numpy()
    owner, flat = owner[order], flat[order]
    first = np.ones(len(flat), dtype=bool)
    first[1:] = (owner[1:] != owner[:-1]) | (flat[1:] != flat[:-1])
    return ClusterMembers(owner[first], flat[first], n)


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
    members = member_table(clusters)
    cluster_index = members.owner
    rows = alert_ids.get_indexer(members.ids) if len(members.ids) else np.empty(0, dtype=np.int64)
    found = rows >= 0
    found_per_cluster = np.bincount(cluster_index[found], minlength=n).astype(np.float32)

    aggregated = np.full((n, len(AGGREGATES) * width), np.nan, dtype=np.float32)
    if found.any():
        pd = load_pandas()

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
        own[:, 3] = ranks(clusters["severity_max"], SEVERITY_RANK)
    if "addresses_involved" in clusters:
        own[:, 4] = list_lengths(clusters["addresses_involved"])[1]
    own[:, 5] = found_per_cluster
    types = (
        one_hot(clusters["cluster_type"], spec.cluster_types)
        if "cluster_type" in clusters
        else np.full((n, len(spec.cluster_types)), np.nan, dtype=np.float32)
    )
    matrix = np.hstack([own, types, aggregated]).astype(np.float32, copy=False)
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix, found_per_cluster.astype(np.int64)
