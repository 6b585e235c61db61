"""PSI against a training reference: a shifted feature reads above the act threshold, an
unchanged one below watch; missing shares and the rolling window behave."""

from __future__ import annotations

import numpy as np

from shared.drift import DriftThresholds, RollingRows, compare, reference


def test_a_shifted_feature_is_flagged_and_the_others_are_stable():
    rng = np.random.default_rng(0)
    train = np.column_stack([rng.normal(0, 1, 20_000), rng.integers(0, 2, 20_000), rng.lognormal(3, 1, 20_000)])
    ref = reference(train, ["a", "flag", "amount"])
    live = np.column_stack([rng.normal(0, 1, 3_000), rng.integers(0, 2, 3_000), rng.lognormal(3, 1, 3_000) * 5])
    live[:300, 0] = np.nan
    report = compare(ref, live, ["a", "flag", "amount"], DriftThresholds())
    features = report["features"]
    assert features["amount"]["psi"] > 0.25 and features["amount"]["status"] == "act"
    assert features["a"]["psi"] < 0.1 and features["flag"]["psi"] < 0.1
    assert features["a"]["missing"] == 0.1 and features["a"]["reference_missing"] == 0.0


def test_no_rows_is_no_data_not_a_number():
    ref = reference(np.ones((10, 1)), ["x"])
    assert compare(ref, np.empty((0, 1)), ["x"], DriftThresholds())["features"]["x"]["status"] == "no data"


def test_the_rolling_window_keeps_the_last_rows():
    rows = RollingRows(capacity=5)
    for start in range(0, 12, 3):
        rows.add(np.arange(start, start + 3, dtype=np.float32).reshape(-1, 1))
    assert rows.matrix(1).ravel().tolist() == [7, 8, 9, 10, 11]
