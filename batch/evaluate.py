"""Held-out evaluation: probabilistic metrics and per-date ranking metrics."""

from __future__ import annotations

import numpy as np

from shared import model_quality


def _clean(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 6)


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    return {
        "n": int(len(labels)),
        "positives": int(np.sum(labels)),
        "auc": _clean(model_quality.roc_auc(labels, scores)),
        "pr_auc": _clean(model_quality.average_precision(labels, scores)),
        "brier": _clean(model_quality.brier(labels, scores)),
    }


def ranking_metrics(groups: np.ndarray, labels: np.ndarray, scorers: dict[str, np.ndarray],
                    k_ndcg: int = 10, k_precision: int = 50) -> dict:
    """NDCG@k and precision@k per query group (network/date) for each scorer, plus means."""
    per_group = []
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        row = {"group": group, "n": int(mask.sum()), "positives": int(labels[mask].sum())}
        for name, scores in scorers.items():
            row[f"{name}_ndcg@{k_ndcg}"] = _clean(model_quality.ndcg_at_k(labels[mask], scores[mask], k_ndcg))
            row[f"{name}_precision@{k_precision}"] = _clean(
                model_quality.precision_at_k(labels[mask], scores[mask], k_precision))
        per_group.append(row)
    means = {}
    for name in scorers:
        for metric in (f"ndcg@{k_ndcg}", f"precision@{k_precision}"):
            values = [r[f"{name}_{metric}"] for r in per_group if r[f"{name}_{metric}"] is not None]
            means[f"{name}_{metric}"] = _clean(float(np.mean(values))) if values else None
    return {"per_date": per_group, "mean": means}


def choose_rank_source(groups: np.ndarray, labels: np.ndarray, ranker: np.ndarray,
                       classifier: np.ndarray, k: int = 10) -> tuple[str, str, dict]:
    """("ranker" | "classifier", why, figures): the learning-to-rank model is used only when it
    ranks the validation dates strictly better (mean NDCG@k) than sorting by the classifier."""
    if not len(labels):
        return "classifier", "no validation dates to show the ranker beats the classifier", {}
    means = ranking_metrics(groups, labels, {"ranker": ranker, "classifier": classifier},
                            k_ndcg=k)["mean"]
    figures = {"ranker_ndcg": means[f"ranker_ndcg@{k}"], "classifier_ndcg": means[f"classifier_ndcg@{k}"]}
    if figures["ranker_ndcg"] is None or figures["classifier_ndcg"] is None:
        return "classifier", "the validation dates have no labelled positives to rank", figures
    if figures["ranker_ndcg"] > figures["classifier_ndcg"]:
        return "ranker", (f"ranker NDCG@{k} {figures['ranker_ndcg']} beats classifier "
                          f"{figures['classifier_ndcg']} on the validation dates"), figures
    return "classifier", (f"ranker NDCG@{k} {figures['ranker_ndcg']} does not beat classifier "
                          f"{figures['classifier_ndcg']} on the validation dates"), figures
