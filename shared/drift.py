"""Feature drift: each model keeps a training reference per feature (quantile bins and missing
rate); live or ingested rows are compared with it by the population stability index (PSI).

PSI = Σ (actual − expected) · ln(actual / expected) over the reference's bins, on non-missing
values; a share of 0 is floored at ``EPSILON`` so an empty bin counts without being infinite.
Rules of thumb (configurable): below 0.1 stable, 0.1–0.25 watch, above 0.25 act.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4
QUANTILES = np.linspace(0.1, 0.9, 9)


@dataclass(frozen=True)
class DriftThresholds:
    watch: float = 0.10
    act: float = 0.25

    def status(self, psi: float | None) -> str:
        if psi is None:
            return "no data"
        return "act" if psi > self.act else "watch" if psi > self.watch else "stable"


def _bins(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts, values, side="left")


def reference(matrix: np.ndarray, names: list[str] | tuple[str, ...]) -> dict:
    """Per feature: interior cut points (deciles, de-duplicated), each bin's share of the
    non-missing training values, and the missing rate."""
    features = {}
    for j, name in enumerate(names):
        column = matrix[:, j].astype(np.float64)
        present = column[~np.isnan(column)]
        if not len(present):
            features[name] = {"cuts": [], "expected": [1.0], "missing": 1.0}
            continue
        cuts = np.unique(np.quantile(present, QUANTILES))
        counts = np.bincount(_bins(present, cuts), minlength=len(cuts) + 1)
        features[name] = {"cuts": cuts.tolist(), "expected": (counts / len(present)).tolist(),
                          "missing": round(float(1 - len(present) / len(column)), 6)}
    return {"rows": int(len(matrix)), "features": features}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def compare(ref: dict, matrix: np.ndarray, names: list[str] | tuple[str, ...],
            thresholds: DriftThresholds) -> dict:
    """PSI and missing share per feature of ``matrix`` against the reference."""
    out = {}
    for j, name in enumerate(names):
        spec = ref["features"].get(name)
        if spec is None:
            continue
        column = matrix[:, j].astype(np.float64) if len(matrix) else np.empty(0)
        present = column[~np.isnan(column)]
        value = None
        if len(present):
            counts = np.bincount(_bins(present, np.asarray(spec["cuts"])),
                                 minlength=len(spec["expected"]))
            value = round(psi(spec["expected"], counts / len(present)), 6)
        out[name] = {"psi": value, "status": thresholds.status(value),
                     "missing": round(float(1 - len(present) / len(column)), 6) if len(column) else None,
                     "reference_missing": spec["missing"]}
    return {"rows": int(len(matrix)), "features": out,
            "thresholds": {"watch": thresholds.watch, "act": thresholds.act}}


class RollingRows:
    """The last ``capacity`` rows of feature matrices, for live drift."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._blocks: deque[np.ndarray] = deque()
        self._rows = 0

    def add(self, matrix: np.ndarray) -> None:
        if not len(matrix) or not self.capacity:
            return
        self._blocks.append(np.array(matrix[-self.capacity:], dtype=np.float32, copy=True))
        self._rows += len(self._blocks[-1])
        while self._rows - len(self._blocks[0]) >= self.capacity:
            self._rows -= len(self._blocks.popleft())

    def matrix(self, width: int) -> np.ndarray:
        if not self._blocks:
            return np.empty((0, width), dtype=np.float32)
        return np.vstack(self._blocks)[-self.capacity:]
