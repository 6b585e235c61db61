import numpy as np
import orjson
import pandas as pd
import pytest
import xgboost as xgb

from shared.features import build_alert_matrix
from shared.scoring import ALERT_SCORE_COLUMNS, RiskScoring, ScoringPolicy, risk_levels


@pytest.fixture
def scoring(bundle):
    return RiskScoring(bundle, ScoringPolicy(explain_min_score=0.0))


def test_scores_are_bit_identical_whatever_the_batch(scoring, sot_frames):
    alerts, features, _, _ = sot_frames
    sample = alerts.iloc[:300]
    whole = scoring.score_alerts(sample, features)
    pieces = pd.concat([scoring.score_alerts(sample.iloc[i:i + 37], features)
                        for i in range(0, len(sample), 37)], ignore_index=True)
    singles = pd.concat([scoring.score_alerts(sample.iloc[[i]], features) for i in range(0, 300, 50)],
                        ignore_index=True)
    assert whole["score"].to_numpy().tobytes() == pieces["score"].to_numpy().tobytes()
    assert whole["rank_score"].to_numpy().tobytes() == pieces["rank_score"].to_numpy().tobytes()
    assert list(whole["explanation"]) == list(pieces["explanation"])
    assert whole["score"].to_numpy()[::50].tobytes() == singles["score"].to_numpy().tobytes()


def test_every_row_carries_model_version_band_and_valid_score(scoring, sot_frames):
    alerts, features, _, _ = sot_frames
    out = scoring.score_alerts(alerts.iloc[:500], features)
    assert list(out.columns) == ALERT_SCORE_COLUMNS
    assert (out["model_version"] == "v-test").all()
    assert out["score"].between(0, 1).all()
    assert set(out["risk_level"]) <= {"low", "medium", "high", "critical"}
    assert out["score"].nunique() > 50  # a real model, not a constant


def test_explanations_are_the_top_contributions(scoring, bundle, sot_frames):
    alerts, features, _, _ = sot_frames
    sample = alerts.iloc[:20]
    out = scoring.score_alerts(sample, features)
    x = build_alert_matrix(bundle.feature_spec, sample, features)
    contribs = bundle.alert_scorer.booster.predict(
        xgb.DMatrix(x, feature_names=list(bundle.feature_spec.names)), pred_contribs=True)
    for row, text in enumerate(out["explanation"]):
        items = orjson.loads(text)
        assert len(items) == 5
        names = [i["feature"] for i in items]
        expected = [bundle.feature_spec.names[j] for j in np.argsort(-np.abs(contribs[row, :-1]), kind="stable")[:5]]
        assert names == expected
        # SHAP contributions add up to the margin of the prediction
        margin = np.log(out["score"][row] / (1 - out["score"][row]))
        assert contribs[row].sum() == pytest.approx(margin, abs=1e-4)


def test_explanations_only_above_the_configured_score(bundle, sot_frames):
    alerts, features, _, _ = sot_frames
    out = RiskScoring(bundle, ScoringPolicy(explain_min_score=0.3)).score_alerts(alerts.iloc[:400], features)
    explained = out["explanation"] != "[]"
    assert explained.any() and (~explained).any()
    assert (out.loc[explained, "score"] >= 0.3).all()
    assert (out.loc[~explained, "score"] < 0.3).all()


def test_risk_bands():
    levels = risk_levels(np.array([0.0, 0.099, 0.1, 0.3, 0.59, 0.6, 1.0]), (0.1, 0.3, 0.6))
    assert list(levels) == ["low", "low", "medium", "high", "high", "critical", "critical"]


def test_cluster_scores_do_not_depend_on_member_order(scoring, sot_frames):
    alerts, features, clusters, _ = sot_frames
    day = clusters.processing_date.iloc[0]
    day_clusters = clusters[clusters.processing_date == day].iloc[:40]
    day_alerts = alerts[alerts.processing_date == day]
    first = scoring.score_clusters_from_alerts(day_clusters, day_alerts, features)
    shuffled = day_clusters.assign(related_alert_ids=day_clusters.related_alert_ids.map(lambda v: list(v)[::-1]))
    second = scoring.score_clusters_from_alerts(shuffled, day_alerts.iloc[::-1], features)
    assert first["score"].to_numpy().tobytes() == second["score"].to_numpy().tobytes()
    assert (first["n_alerts_found"] == first["n_alerts"]).all()
    missing = scoring.score_clusters_from_alerts(day_clusters, day_alerts.iloc[:0], features)
    assert (missing["n_alerts_found"] == 0).all()
