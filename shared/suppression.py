"""Suppression with a guaranteed bound: the score below which alerts may be set aside, and the
quality-control sample that stays in the queue all the same.

The threshold is chosen on held-out labelled alerts: the highest score ``t`` such that the 95 %
Clopper–Pearson upper bound of the share of positive alerts scoring below ``t`` is at most
``max_miss``. With few positives no threshold meets the bound: ``t`` is then 0 (nothing is
suppressed) and the reason is recorded. The QC sample is chosen by a hash of the alert id, so the
stream and the backfill pick the same alerts, whatever the batch and on any machine.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95


def upper_bound(misses: int, positives: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper–Pearson upper bound of a proportion, ``misses`` out of ``positives``."""
    if positives <= 0 or misses >= positives:
        return 1.0
    # The inverse of the regularised incomplete beta function is the Beta quantile itself (what
    # scipy.stats.beta.ppf evaluates), without importing scipy.stats (~1 s, ~40 MB resident).
    from scipy.special import betaincinv

    return float(betaincinv(misses + 1, positives - misses, confidence))


@dataclass(frozen=True)
class SuppressionThreshold:
    threshold: float          # alerts scoring strictly below it are suppressible
    max_miss: float           # the bound asked for
    positives: int            # held-out positive alerts it was chosen on
    positives_below: int      # of which below the threshold
    miss_upper_bound: float   # 95 % upper bound of the share of positives below it
    alerts: int               # held-out alerts (labelled or not)
    share_below: float        # of which below the threshold: the share that would be set aside
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


def choose_threshold(scores: np.ndarray, labels: np.ndarray, max_miss: float) -> SuppressionThreshold:
    """The highest threshold whose bound holds, from held-out ``scores`` and ``labels`` (1, 0 or
    NaN for unlabelled; every alert counts toward the share set aside)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    positive = np.sort(scores[labels == 1])
    p = len(positive)
    # The bound grows with the misses: the largest k whose bound holds, found by bisection.
    low, high = -1, p - 1
    while low < high:
        mid = (low + high + 1) // 2
        if upper_bound(mid, p) <= max_miss:
            low = mid
        else:
            high = mid - 1
    misses = low
    if misses < 0:
        needed = int(np.ceil(np.log(1 - CONFIDENCE) / np.log(1 - max_miss)))  # 0 misses of n
        return SuppressionThreshold(0.0, max_miss, p, 0, upper_bound(0, p), len(scores), 0.0,
                                    f"{p} held-out positives cannot bound the miss rate at "
                                    f"{max_miss:g} (at least {needed} are needed): nothing is suppressed")
    # t = the (misses+1)-th smallest positive score: exactly the positives strictly below it are
    # missed (ties at t stay in the queue, so never more than `misses`).
    threshold = float(positive[misses])
    below = int(np.sum(positive < threshold))
    share = float(np.mean(scores < threshold)) if len(scores) else 0.0
    return SuppressionThreshold(threshold, max_miss, p, below, upper_bound(below, p), len(scores),
                                share, f"{below} of {p} held-out positives score below {threshold:.6g}")


def qc_sample(alert_ids: np.ndarray, share: float) -> np.ndarray:
    """True for the alerts of the deterministic quality-control sample (``share`` of all ids)."""
    if share <= 0 or not len(alert_ids):
        return np.zeros(len(alert_ids), dtype=bool)
    cut = int(share * 2**64)
    return np.fromiter(
        (int.from_bytes(hashlib.sha256(str(a).encode()).digest()[:8], "big") < cut for a in alert_ids),
        dtype=bool, count=len(alert_ids))
