"""Training's whole-range steps give what each batch on its own gives, whatever order the
frames' rows come in."""

import numpy as np
import pandas as pd

from batch.dataset import TrainingData, label_clusters
from batch.train import cluster_feature_matrix
from shared.cluster_features import ClusterFeatureSpec, build_cluster_matrix, fit_cluster_spec
from shared.columns import normalise_keys
from shared.features import build_alert_matrix, fit_feature_spec


def _data(sot_frames) -> tuple[TrainingData, np.ndarray, ClusterFeatureSpec]:
    alerts, features, clusters = (normalise_keys(frame) for frame in sot_frames[:3])
    spec = fit_feature_spec(alerts, features)
    x = build_alert_matrix(spec, alerts, features)
    rng = np.random.default_rng(3)
    alerts = alerts.assign(label=np.where(rng.random(len(alerts)) < 0.5, np.nan,
                                          (rng.random(len(alerts)) < 0.3).astype(float)))
    return TrainingData(alerts, features, clusters), x, fit_cluster_spec(clusters, spec.names)


def test_cluster_features_of_the_range_are_each_batchs_own_in_any_row_order(sot_frames):
    data, x, spec = _data(sot_frames)
    expected = np.vstack([
        build_cluster_matrix(spec, data.clusters[data.clusters.processing_date == d],
                             pd.Index(data.alerts.alert_id[data.alerts.processing_date == d]),
                             x[(data.alerts.processing_date == d).to_numpy()])[0]
        for d in sorted(data.clusters.processing_date.unique())])
    assert cluster_feature_matrix(data, spec, x).tobytes() == expected.tobytes()

    # Rows out of batch order: positions instead of slices, the same values row for row.
    order = np.random.default_rng(5).permutation(len(data.clusters))
    shuffled = TrainingData(data.alerts, data.features, data.clusters.iloc[order].reset_index(drop=True))
    assert cluster_feature_matrix(shuffled, spec, x).tobytes() == expected[order].tobytes()


def test_a_cluster_is_labelled_from_its_own_batchs_members(sot_frames):
    data, _, _ = _data(sot_frames)
    got = label_clusters(data.clusters, data.alerts)
    assert {0.0, 1.0} <= set(got[~np.isnan(got)])
    by_key = {(n, d, a): y for n, d, a, y in zip(data.alerts.network, data.alerts.processing_date,
                                                  data.alerts.alert_id, data.alerts.label, strict=True)}
    for k, row in enumerate(data.clusters.itertuples()):
        ids = {*(row.related_alert_ids if row.related_alert_ids is not None else []), row.primary_alert_id}
        labels = [by_key.get((row.network, row.processing_date, i), np.nan) for i in ids]
        labelled = [v for v in labels if v == v]
        want = max(labelled) if labelled else np.nan
        assert (got[k] == want) or (np.isnan(got[k]) and np.isnan(want)), row.cluster_id

    # The same ids in another batch are other alerts: moving the alerts a day on unlabels them.
    moved = data.alerts.assign(processing_date="1999-01-01")
    assert np.isnan(label_clusters(data.clusters, moved)).all()
