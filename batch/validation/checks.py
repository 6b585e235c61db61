"""Checks that need only the scores: integrity, behaviour, and ground truth against the champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import xgboost as xgb

from batch.capacity import queue_positions
from shared import model_quality
from shared.scoring import RiskScoring

EXPLAIN_SAMPLE = 100
BRIER_ROOM = 1.10
BOOTSTRAP = 200
SEED = 7


@dataclass
class Check:
    name: str
    passed: bool
    figures: dict
    limits: dict = field(default_factory=dict)
    why: str = ""

    def to_dict(self) -> dict:
        return {"passed": self.passed, "figures": self.figures, "limits": self.limits, "why": self.why}


@dataclass
class Scored:
    """One version's scores of the validation alerts, in the alerts' order."""

    version: str
    frame: pd.DataFrame      # RiskScoring's score frame (score, rank_score, risk_level, …)
    matrix: np.ndarray       # the feature matrix it was scored from

    def take(self, rows: np.ndarray) -> Scored:
        return Scored(self.version, self.frame.iloc[rows].reset_index(drop=True), self.matrix[rows])

    @property
    def scores(self) -> np.ndarray:
        return self.frame["score"].to_numpy(dtype=np.float64)

    @property
    def rank_scores(self) -> np.ndarray:
        return self.frame["rank_score"].to_numpy(dtype=np.float64)


def score(scoring: RiskScoring, alerts: pd.DataFrame, features: pd.DataFrame) -> Scored:
    frame, matrix = scoring.score_alerts_matrix(alerts, features)
    return Scored(scoring.model_version, frame, matrix)


def integrity(scoring: RiskScoring, alerts: pd.DataFrame, scored: Scored) -> Check:
    """Every alert scored once; scores finite in [0, 1], rank scores finite; explanations valid
    JSON naming model features, their contributions equal to TreeSHAP recomputed."""
    frame = scored.frame
    keys = frame[["network", "processing_date", "window_days", "alert_id"]].astype(str)
    duplicates = int(keys.duplicated().sum())
    s, r = scored.scores, scored.rank_scores
    bad_scores = int((~np.isfinite(s) | (s < 0) | (s > 1)).sum())
    bad_ranks = int((~np.isfinite(r)).sum())
    names = scoring.bundle.feature_spec.names
    rng = np.random.default_rng(SEED)
    sample = np.sort(rng.choice(len(frame), size=min(EXPLAIN_SAMPLE, len(frame)), replace=False))
    explained = scoring.explain(scored.matrix[sample])
    recomputed = scoring.bundle.alert_scorer.booster.predict(
        xgb.DMatrix(scored.matrix[sample], missing=np.nan, feature_names=list(names)),
        pred_contribs=True)[:, :-1]
    index = {n: j for j, n in enumerate(names)}
    invalid, unknown, worst = 0, 0, 0.0
    for row, text in enumerate(explained):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            invalid += 1
            continue
        for item in items:
            j = index.get(item.get("feature"))
            if j is None:
                unknown += 1
                continue
            worst = max(worst, abs(float(item["contribution"]) - float(recomputed[row, j])))
    figures = {"alerts": len(alerts), "scored": len(frame), "duplicates": duplicates,
               "scores_not_in_0_1": bad_scores, "rank_scores_not_finite": bad_ranks,
               "explanations_checked": len(sample), "explanations_invalid": invalid,
               "explanation_features_unknown": unknown,
               "max_contribution_difference": round(worst, 9)}
    limits = {"scored": len(alerts), "duplicates": 0, "scores_not_in_0_1": 0,
              "rank_scores_not_finite": 0, "explanations_invalid": 0,
              "explanation_features_unknown": 0, "max_contribution_difference": 1e-6}
    failed = [k for k, v in limits.items() if (figures[k] > v if k == "max_contribution_difference"
                                               else figures[k] != v)]
    return Check("integrity", not failed, figures, limits,
                 "; ".join(f"{k} {figures[k]} (limit {limits[k]})" for k in failed))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Σ over equal-width score bins of (share of alerts) × |observed rate − mean score|."""
    return float(sum(count / len(scores) * abs(rate - mean)
                     for mean, rate, count in model_quality.calibration_bins(labels, scores, bins)))


def behaviour(scored: Scored, labels: np.ndarray, min_variance: float = 1e-4,
              min_distinct_share: float = 0.01, max_ece: float = 0.10) -> Check:
    """Not a constant or near-constant model, and calibrated on the labelled alerts: a Brier
    score at most 10 % above always answering the base rate's, an expected calibration error
    bounded."""
    s = scored.scores
    labelled = ~np.isnan(labels)
    y, p = labels[labelled], s[labelled]
    prevalence = float(y.mean()) if len(y) else float("nan")
    figures = {"score_variance": round(float(np.var(s)), 8) if len(s) else 0.0,
               "distinct_score_share": round(len(np.unique(s)) / len(s), 6) if len(s) else 0.0,
               "labelled": int(labelled.sum()), "prevalence": round(prevalence, 6),
               "brier": round(model_quality.brier(y, p), 6) if len(y) else None,
               "ece": round(expected_calibration_error(y, p), 6) if len(y) else None}
    # the base rate's Brier score, with 10 % of room: a few hundred labels move a Brier score
    # by that much between two fits (measured on the tests' small days)
    base = BRIER_ROOM * prevalence * (1 - prevalence) if len(y) else None
    limits = {"score_variance": min_variance, "distinct_score_share": min_distinct_share,
              "brier": round(base, 6) if base is not None else None, "ece": max_ece}
    failed = []
    if figures["score_variance"] < min_variance:
        failed.append(f"score variance {figures['score_variance']} < {min_variance}: a constant model")
    if figures["distinct_score_share"] < min_distinct_share:
        failed.append(f"distinct scores {figures['distinct_score_share']:.2%} of alerts "
                      f"< {min_distinct_share:.0%}: a near-constant model")
    if figures["brier"] is not None and figures["brier"] > limits["brier"]:
        failed.append(f"Brier {figures['brier']} worse than the base rate's "
                      f"{prevalence * (1 - prevalence):.6f} (limit {limits['brier']})")
    if figures["ece"] is not None and figures["ece"] > max_ece:
        failed.append(f"calibration error {figures['ece']} > {max_ece}")
    return Check("behaviour", not failed, figures, limits, "; ".join(failed))


def _recall_at(positions: np.ndarray, positive: np.ndarray, capacity: int) -> float:
    found = positive & (positions < capacity)
    return float(found.sum() / positive.sum()) if positive.any() else float("nan")


# How much worse than the champion each figure may be: PR-AUC and recall at capacity move more
# between two fits of the same data (measured: 0.04 PR-AUC between two seeds) than AUC does.
TOLERANCE = {"auc": 0.01, "pr_auc": 0.05, "recall_at_capacity": 0.05}


def ground_truth(candidate: Scored, champion: Scored | None, alerts: pd.DataFrame,
                 labels: np.ndarray, capacity: int, scale: float = 1.0) -> Check:
    """AUC, PR-AUC and recall at capacity of both versions on the same labelled alerts, with a
    bootstrap 95 % interval of each difference (candidate − champion). Fails when a difference
    is below −tolerance (:data:`TOLERANCE` × ``scale``) and its interval lies wholly below 0:
    worse, and not by chance."""
    if champion is None:
        return Check("ground_truth", True, {}, {}, "no champion to compare with")
    groups = (alerts["network"].astype(str) + "/" + alerts["processing_date"].astype(str)).to_numpy()
    ids = alerts["alert_id"].astype(str).to_numpy()
    labelled = ~np.isnan(labels)
    y = labels[labelled]
    versions = {"candidate": candidate, "champion": champion}
    positions = {k: queue_positions(groups, v.rank_scores, ids)[labelled] for k, v in versions.items()}
    scores = {k: v.scores[labelled] for k, v in versions.items()}
    measures: dict[str, Callable[[np.ndarray, str], float]] = {
        "auc": lambda idx, k: model_quality.roc_auc(y[idx], scores[k][idx]),
        "pr_auc": lambda idx, k: model_quality.average_precision(y[idx], scores[k][idx]),
        "recall_at_capacity": lambda idx, k: _recall_at(positions[k][idx], y[idx] == 1, capacity),
    }
    everything = np.arange(len(y))
    rng = np.random.default_rng(SEED)
    draws = [rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP)] if len(y) else []
    figures, failed = {}, []
    for name, measure in measures.items():
        point = {k: measure(everything, k) for k in versions}
        diffs = np.array([measure(d, "candidate") - measure(d, "champion") for d in draws])
        diffs = diffs[np.isfinite(diffs)]
        low, high = (np.quantile(diffs, [0.025, 0.975]) if len(diffs) else (np.nan, np.nan))
        difference = point["candidate"] - point["champion"]
        figures[name] = {"candidate": round(point["candidate"], 6), "champion": round(point["champion"], 6),
                         "difference": round(difference, 6),
                         "interval_95": [round(float(low), 6), round(float(high), 6)]}
        if difference < -TOLERANCE[name] * scale and high < 0:
            failed.append(f"{name} {point['candidate']:.4f} vs champion {point['champion']:.4f} "
                          f"(difference {difference:+.4f}, 95% interval {low:+.4f}..{high:+.4f})")
    figures["labelled"] = int(labelled.sum())
    figures["positives"] = int((y == 1).sum())
    return Check("ground_truth", not failed, figures,
                 {"tolerance": {k: v * scale for k, v in TOLERANCE.items()},
                  "fails_when": "difference < -tolerance and interval below 0"},
                 "; ".join(failed))
