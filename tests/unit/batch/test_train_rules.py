import numpy as np
import pytest

from batch.train import TrainConfig, _require, split_dates
from shared.errors import TrainingRefused

CFG = TrainConfig(("ethereum",), None, None, min_labelled=10, min_positives=3)  # type: ignore[arg-type]


def test_temporal_split_holds_out_the_last_dates():
    dates = [f"2025-01-{d:02d}" for d in range(1, 11)]
    fit, valid, held = split_dates(dates[::-1] + dates, None)
    assert held == dates[-2:] and valid == [dates[-3]] and fit == dates[:-3]
    assert max(fit) < min(valid) < min(held)
    with pytest.raises(TrainingRefused, match="dates"):
        split_dates(dates[:2], 2)


def test_one_class_or_too_few_labels_is_refused_not_trained():
    with pytest.raises(TrainingRefused, match="positive"):
        _require("alert_scorer", np.zeros(100), CFG, "training")
    with pytest.raises(TrainingRefused, match="labelled rows"):
        _require("alert_scorer", np.array([1, 0, np.nan, np.nan]), CFG, "training")
    with pytest.raises(TrainingRefused, match="held-out"):
        _require("alert_scorer", np.array([0.0, 0.0, np.nan]), CFG, "held-out")
    _require("alert_scorer", np.r_[np.ones(5), np.zeros(20), np.full(5, np.nan)], CFG, "training")
