"""Training report: report.json, held-out predictions and PNG plots (ROC, PR, calibration,
feature importance). The plots need the ``report`` extra (matplotlib); without it the report
is written all the same and says that the plots were left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb

from shared import model_quality as m

PLOTS = ("roc.png", "pr.png", "calibration.png", "importance.png", "recall_at_capacity.png")
NO_PLOTS = "plots left out: install the report extra (pip install 'amlscore[report]') for them"

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # a lean install: the worker image, say
    plt = None


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_roc(labels, scores, auc, path: Path) -> None:
    fpr, tpr, _ = m.roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"alert_scorer (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out dates")
    ax.legend(loc="lower right")
    _save(fig, path)


def _plot_pr(labels, scores, ap, path: Path) -> None:
    precision, recall, _ = m.pr_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.step(recall, precision, where="post", label=f"alert_scorer (AP {ap:.3f})")
    ax.axhline(labels.mean(), ls="--", color="grey", label=f"prevalence {labels.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision–recall, held-out dates", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    _save(fig, path)


def _plot_calibration(labels, scores, brier, path: Path) -> None:
    bins = m.calibration_bins(labels, scores, bins=10)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.plot([b[0] for b in bins], [b[1] for b in bins], "o-", label=f"alert_scorer (Brier {brier:.4f})")
    for mean, rate, count in bins:
        ax.annotate(str(count), (mean, rate), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="mean predicted risk", ylabel="observed positive rate", title="Calibration (n per bin)")
    ax.legend(loc="upper left")
    _save(fig, path)


def _importance(booster: xgb.Booster, top: int = 20) -> list[tuple[str, float]]:
    gain = booster.get_score(importance_type="total_gain")
    return sorted(gain.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def _plot_importance(ranked: list[tuple[str, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(ranked) + 1.2))
    ax.barh([k for k, _ in ranked][::-1], [v for _, v in ranked][::-1])
    ax.set(xlabel="total gain", title="alert_scorer feature importance")
    _save(fig, path)


def plot_capacity(points: dict[str, dict], path: Path) -> None:
    """Recall against alerts reviewed per day, one line per version (name → operating points)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    capacity = None
    for name, figures in points.items():
        curve = figures["overall"]["curve"]
        ax.plot([r["alerts_per_day"] for r in curve], [r["recall"] or 0.0 for r in curve], "o-",
                ms=3, label=f"{name} (recall {figures['recall_at_capacity']} at capacity)")
        capacity = figures["review_capacity"]
    if capacity is not None:
        ax.axvline(capacity, ls="--", color="grey", label=f"review capacity {capacity}/day")
    ax.set(xlabel="alerts reviewed per day (per network)", ylabel="recall of positive alerts",
           title="Recall at review capacity, held-out dates", ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def write_report(directory: Path, version: str, metrics: dict, split: dict, held: dict,
                 booster: xgb.Booster, names: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    labels, scores = held["labels"], held["scores"]
    scorer = metrics["alert_scorer"]
    ranked = _importance(booster)
    if plt is not None:
        _plot_roc(labels, scores, scorer["auc"], directory / "roc.png")
        _plot_pr(labels, scores, scorer["pr_auc"], directory / "pr.png")
        _plot_calibration(labels, scores, scorer["brier"], directory / "calibration.png")
        _plot_importance(ranked, directory / "importance.png")
        plot_capacity({version: metrics["capacity"]}, directory / "recall_at_capacity.png")
    pq.write_table(pa.table({
        "alert_id": held["alert_ids"].astype(str), "group": held["groups"].astype(str),
        "label": labels.astype(np.int8), "score": scores, "rank_score": held["rank_scores"],
        "seen_address": held["seen_address"],
        "label_source": held.get("label_source", np.full(len(labels), "address")).astype(str),
    }), directory / "holdout_predictions.parquet")
    report = {"model_version": version, "split": split, "metrics": metrics,
              "feature_importance": [{"feature": k, "total_gain": round(v, 4)} for k, v in ranked],
              "n_features": len(names), "plots": list(PLOTS) if plt is not None else [],
              "holdout_predictions": "holdout_predictions.parquet"}
    if plt is None:
        report["plots_left_out"] = NO_PLOTS
    path = directory / "report.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return path
