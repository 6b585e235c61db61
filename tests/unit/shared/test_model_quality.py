import math

import numpy as np
import pytest

from shared import model_quality


def test_auc_counts_ties_half_and_is_nan_for_one_class():
    assert model_quality.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert model_quality.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(model_quality.roc_auc([1, 1], [0.2, 0.3]))


def test_average_precision_matches_hand_computation():
    # ranks: 1(+) 2(-) 3(+) → AP = (1/1 + 2/3) / 2
    assert model_quality.average_precision([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)


def test_brier():
    assert model_quality.brier([0, 1], [0.25, 0.75]) == pytest.approx(0.0625)


def test_ndcg_at_k():
    labels = np.array([0, 1, 0, 1])
    perfect = model_quality.ndcg_at_k(labels, np.array([0.1, 0.9, 0.2, 0.8]), k=2)
    assert perfect == pytest.approx(1.0)
    # one hit at rank 2 of an ideal two hits in top 2
    partial = model_quality.ndcg_at_k(labels, np.array([0.9, 0.8, 0.1, 0.2]), k=2)
    assert partial == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # a constant score earns no credit from tie order
    assert model_quality.ndcg_at_k(labels, np.zeros(4), k=2) == pytest.approx(0.0)
    assert math.isnan(model_quality.ndcg_at_k(np.zeros(3), np.arange(3.0), k=2))


def test_precision_at_k():
    assert model_quality.precision_at_k([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], k=2) == pytest.approx(0.5)
    assert model_quality.precision_at_k([1, 0], [0.9, 0.8], k=50) == pytest.approx(0.5)


def test_calibration_bins_cover_all_rows():
    bins = model_quality.calibration_bins(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 0.9, 0.1]), bins=10)
    assert sum(b[2] for b in bins) == 4
    assert bins[0][1] == 0.0 and bins[-1][1] == 1.0
