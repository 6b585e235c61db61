"""Operating points at the investigators' review capacity.

Analysts work each day's queue (one network, one date) from the top, and review a fixed number of
alerts a day. What they need to know is how many of the illicit alerts fall inside that number:
recall at capacity (positives among the alerts reviewed, over all positives), overall and per
typology, at capacities from 0 to twice theirs, and how many alerts a day they would need to
review to reach 90 %, 95 % and 99 % recall. Precision is among the reviewed alerts whose outcome is
known (labelled). The queue holds every alert, labelled or not, in rank order.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

POINTS = 20
RECALL_TARGETS = (0.90, 0.95, 0.99)


def capacities(capacity: int, points: int = POINTS) -> list[int]:
    """``points`` capacities from 0 to twice ``capacity`` (distinct, increasing)."""
    return sorted({int(round(c)) for c in np.linspace(0, 2 * capacity, points)})


def queue_positions(groups: np.ndarray, rank_scores: np.ndarray, alert_ids: np.ndarray) -> np.ndarray:
    """Each alert's 0-based position in its day's queue: rank score descending, then alert_id
    (the order the read API and ``alert_rankings`` give)."""
    order = np.lexsort((alert_ids.astype(str), -rank_scores, groups.astype(str)))
    positions = np.empty(len(order), dtype=np.int64)
    sorted_groups = groups.astype(str)[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(order)])
    positions[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    return positions


def _alerts_needed(positive_positions: np.ndarray, target: float) -> int | None:
    """Smallest daily capacity whose recall reaches ``target`` (None: no positives)."""
    p = len(positive_positions)
    if not p:
        return None
    needed = math.ceil(target * p - 1e-9)
    return int(np.sort(positive_positions)[needed - 1] + 1)


def _curve(positions: np.ndarray, positive: np.ndarray, labelled: np.ndarray,
           grid: list[int]) -> list[dict]:
    total = int(positive.sum())
    out = []
    for k in grid:
        reviewed = positions < k
        found = int((reviewed & positive).sum())
        known = int((reviewed & labelled).sum())
        out.append({"alerts_per_day": k, "reviewed": int(reviewed.sum()), "positives_found": found,
                    "recall": round(found / total, 6) if total else None,
                    "precision": round(found / known, 6) if known else None})
    return out


def operating_points(groups: np.ndarray, alert_ids: np.ndarray, rank_scores: np.ndarray,
                     labels: np.ndarray, typologies: np.ndarray, capacity: int) -> dict:
    """Recall and precision at each capacity of :func:`capacities`, overall and per typology,
    and the alerts a day needed for each of :data:`RECALL_TARGETS`. ``labels``: 1, 0 or NaN."""
    positions = queue_positions(groups, rank_scores, alert_ids)
    labels = np.asarray(labels, dtype=np.float64)
    positive, labelled = labels == 1, ~np.isnan(labels)
    days = len(set(groups.tolist()))
    grid = capacities(capacity)

    def block(mask: np.ndarray) -> dict:
        return {"positives": int((positive & mask).sum()),
                "curve": _curve(positions, positive & mask, labelled, grid),
                "alerts_per_day_for_recall": {f"{t:.0%}": _alerts_needed(positions[positive & mask], t)
                                              for t in RECALL_TARGETS}}

    everything = np.ones(len(labels), dtype=bool)
    at = _curve(positions, positive, labelled, [capacity])[0]
    return {"review_capacity": capacity, "days": days, "alerts": int(len(labels)),
            "labelled": int(labelled.sum()), "recall_at_capacity": at["recall"],
            "precision_at_capacity": at["precision"], "overall": block(everything),
            "per_typology": {str(t): block(typologies == t) for t in sorted(set(typologies.tolist()))}}


def queue_figures(alerts: pd.DataFrame, rank_scores: np.ndarray, labels: np.ndarray,
                  capacity: int) -> dict:
    """:func:`operating_points` of scored alerts (network, processing_date, alert_id and, when
    the source has it, typology_type), one day's queue per network and date."""
    groups = (alerts["network"].astype(str) + "/" + alerts["processing_date"].astype(str)).to_numpy()
    typologies = (alerts["typology_type"].fillna("unknown").astype(str).to_numpy()
                  if "typology_type" in alerts else np.full(len(alerts), "unknown", dtype=object))
    return operating_points(groups, alerts["alert_id"].astype(str).to_numpy(), rank_scores,
                            labels, typologies, capacity)


def capacity_table(points: dict) -> list[str]:
    """The overall curve as text lines for a summary."""
    lines = [f"{'alerts/day':>10} {'recall':>8} {'precision':>10}"]
    for row in points["overall"]["curve"]:
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        lines.append(f"{row['alerts_per_day']:>10} {recall:>8} {precision:>10}")
    needed = points["overall"]["alerts_per_day_for_recall"]
    lines.append("alerts a day for " + ", ".join(f"{k} recall: {v if v is not None else '-'}"
                                                 for k, v in needed.items()))
    return lines
