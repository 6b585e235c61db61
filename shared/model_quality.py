"""Evaluation metrics, in numpy (no scikit-learn in the runtime image)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError("labels and scores differ in length")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half); NaN if one class only."""
    labels, scores = _check(labels, scores)
    positives = labels.sum()
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """PR-AUC as average precision (step interpolation, like scikit-learn's)."""
    labels, scores = _check(labels, scores)
    if labels.sum() == 0:
        return float("nan")
    precision, recall, _ = pr_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(labels: np.ndarray, scores: np.ndarray) -> float:
    labels, scores = _check(labels, scores)
    return float(np.mean((scores - labels) ** 2)) if len(labels) else float("nan")


def _distinct_thresholds(labels: np.ndarray, scores: np.ndarray):
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_pos = np.cumsum(labels)[last_of_tie]
    false_pos = (last_of_tie + 1) - true_pos
    return true_pos, false_pos, scores[last_of_tie]


def roc_curve(labels: np.ndarray, scores: np.ndarray):
    labels, scores = _check(labels, scores)
    tp, fp, thresholds = _distinct_thresholds(labels, scores)
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)], thresholds


def pr_curve(labels: np.ndarray, scores: np.ndarray):
    labels, scores = _check(labels, scores)
    tp, fp, thresholds = _distinct_thresholds(labels, scores)
    precision = tp / (tp + fp)
    recall = tp / max(labels.sum(), 1)
    return precision, recall, thresholds


def calibration_bins(labels: np.ndarray, scores: np.ndarray, bins: int = 10):
    """(mean predicted, observed rate, count) per equal-width score bin with any rows."""
    labels, scores = _check(labels, scores)
    index = np.minimum((scores * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append((float(scores[mask].mean()), float(labels[mask].mean()), int(mask.sum())))
    return rows


def ndcg_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 10) -> float:
    """NDCG@k with gains 2^rel − 1; NaN when the list holds no relevant item."""
    labels, scores = _check(labels, scores)
    ideal = np.sort(labels)[::-1][:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_dcg = float(np.sum((2**ideal - 1) * discounts[: len(ideal)]))
    if ideal_dcg == 0:
        return float("nan")
    # Ties broken pessimistically (negatives first) so a constant score earns no credit.
    order = np.lexsort((labels, -scores))[:k]
    dcg = float(np.sum((2 ** labels[order] - 1) * discounts[: len(order)]))
    return dcg / ideal_dcg


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 50) -> float:
    labels, scores = _check(labels, scores)
    if not len(labels):
        return float("nan")
    order = np.lexsort((labels, -scores))[:k]
    return float(labels[order].mean())
