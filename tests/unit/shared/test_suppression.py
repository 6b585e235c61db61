"""The suppression threshold's bound holds: Clopper–Pearson figures, the threshold rule, its
coverage over repeated samples, and the deterministic QC sample."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from shared.suppression import choose_threshold, qc_sample, upper_bound


def test_clopper_pearson_upper_bounds_match_known_values():
    # 0 misses out of n: the bound is 1 - 0.05 ** (1 / n) ("rule of three": ≈ 3 / n)
    assert upper_bound(0, 299) == pytest.approx(1 - 0.05 ** (1 / 299), rel=1e-9)
    assert upper_bound(0, 299) < 0.01 < upper_bound(0, 298)
    assert upper_bound(5, 1000) == pytest.approx(beta.ppf(0.95, 6, 995))
    assert upper_bound(3, 3) == 1.0 and upper_bound(0, 0) == 1.0


def test_the_threshold_is_the_highest_whose_bound_holds():
    rng = np.random.default_rng(1)
    scores = rng.random(5000)
    labels = np.where(rng.random(5000) < 0.2, 1.0, np.where(rng.random(5000) < 0.5, 0.0, np.nan))
    chosen = choose_threshold(scores, labels, 0.05)
    positives = np.sort(scores[labels == 1])
    below = int((positives < chosen.threshold).sum())
    assert below == chosen.positives_below and chosen.positives == len(positives)
    assert upper_bound(below, len(positives)) <= 0.05 < upper_bound(below + 1, len(positives))
    assert chosen.share_below == pytest.approx(float(np.mean(scores < chosen.threshold)))
    assert chosen.threshold == positives[below]  # one positive more below it would break the bound


def test_too_few_positives_suppress_nothing_and_say_how_many_are_needed():
    chosen = choose_threshold(np.linspace(0, 1, 100), np.r_[np.ones(50), np.zeros(50)], 0.01)
    assert chosen.threshold == 0.0 and chosen.share_below == 0.0
    assert "at least 299 are needed" in chosen.why


def test_the_bound_covers_the_true_miss_rate_in_95_percent_of_samples():
    # Positives score Beta(5, 2): the true share below t is beta.cdf(t, 5, 2).
    rng = np.random.default_rng(7)
    exceeded = 0
    trials = 400
    for _ in range(trials):
        positives = rng.beta(5, 2, 600)
        negatives = rng.beta(2, 5, 3000)
        scores = np.r_[positives, negatives]
        labels = np.r_[np.ones(600), np.zeros(3000)]
        chosen = choose_threshold(scores, labels, 0.02)
        exceeded += beta.cdf(chosen.threshold, 5, 2) > 0.02
    assert exceeded / trials <= 0.07, exceeded  # 5 % at most, with room for the sample's own noise


def test_the_qc_sample_is_deterministic_and_near_its_share():
    ids = np.array([f"alert-{i}" for i in range(20_000)], dtype=object)
    first, again = qc_sample(ids, 0.02), qc_sample(ids[::-1], 0.02)[::-1]
    assert (first == again).all()  # by alert id, whatever the order or batch
    assert 0.015 < first.mean() < 0.025
    assert not qc_sample(ids, 0.0).any() and qc_sample(ids, 1.0).all()
