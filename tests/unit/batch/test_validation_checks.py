"""The validation's score-only checks decide as their limits say (no engine, no model files)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from batch.validation.checks import Scored, behaviour, ground_truth


def _scored(scores: np.ndarray, name: str = "v") -> Scored:
    return Scored(name, pd.DataFrame({"score": scores, "rank_score": scores}), np.empty((len(scores), 0)))


def _alerts(n: int) -> pd.DataFrame:
    return pd.DataFrame({"network": "ethereum", "processing_date": np.repeat(["2025-01-01", "2025-01-02"], n // 2),
                         "alert_id": [f"a{i}" for i in range(n)]})


def test_a_constant_or_uncalibrated_model_fails_behaviour():
    rng = np.random.default_rng(0)
    good = rng.beta(0.5, 4, 2000)  # calibrated: each alert positive with its own score
    labels = (rng.random(2000) < good).astype(float)
    assert behaviour(_scored(good), labels).passed
    constant = behaviour(_scored(np.full(2000, 0.3)), labels)
    assert not constant.passed and "constant model" in constant.why
    inverted = behaviour(_scored(1 - good), labels)  # varied, but worse than the base rate
    assert not inverted.passed and "Brier" in inverted.why


def test_the_champion_comparison_fails_only_when_worse_beyond_chance():
    rng = np.random.default_rng(1)
    n = 4000
    labels = (rng.random(n) < 0.1).astype(float)
    strong = labels * 0.5 + rng.random(n) * 0.5
    alerts = _alerts(n)
    noisy_twin = strong + rng.normal(0, 0.01, n)  # the same model, refit: passes
    assert ground_truth(_scored(noisy_twin), _scored(strong), alerts, labels, 100).passed
    weak = labels * 0.1 + rng.random(n) * 0.9
    worse = ground_truth(_scored(weak), _scored(strong), alerts, labels, 100)
    assert not worse.passed and "auc" in worse.why
    low, high = worse.figures["auc"]["interval_95"]
    assert low <= worse.figures["auc"]["difference"] <= high < 0
    assert ground_truth(_scored(weak), None, alerts, labels, 100).passed  # no champion yet
