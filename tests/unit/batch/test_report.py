"""The training report without the plotting extra: written whole, saying the plots were left out."""

from __future__ import annotations

import numpy as np
import orjson

from batch import report


def test_without_matplotlib_the_report_is_written_and_says_so(bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "plt", None)
    labels = np.array([0.0, 1.0, 0.0, 1.0])
    held = {"alert_ids": np.array(["a", "b", "c", "d"]), "groups": np.array(["g"] * 4),
            "labels": labels, "scores": np.array([0.1, 0.9, 0.2, 0.8]),
            "rank_scores": np.array([0.1, 0.9, 0.2, 0.8]), "seen_address": np.array([True] * 4)}
    metrics = {"alert_scorer": {"auc": 1.0, "pr_auc": 1.0, "brier": 0.02}}
    path = report.write_report(tmp_path, "v", metrics, {}, held, bundle.alert_scorer.booster, ["x"])
    written = orjson.loads(path.read_bytes())
    assert written["plots"] == [] and "amlscore[report]" in written["plots_left_out"]
    assert written["feature_importance"] and not list(tmp_path.glob("*.png"))
