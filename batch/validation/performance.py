"""Performance: per-alert latency (one alert alone, and in a 1,000-alert batch), alerts/s and
the memory of the loaded version — each against the champion measured in the same run, the two
interleaved so that the box's noise falls on both alike."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from batch.validation.checks import Check
from shared.scoring import RiskScoring

SINGLE_CALLS = 100
BATCH = 1_000
BATCH_CALLS = 12
MAX_SLOWDOWN = 3.0  # candidate vs champion: latency, 1/alerts per second, memory


def _timings(scoring: RiskScoring, alerts: pd.DataFrame, features: pd.DataFrame,
             calls: int) -> list[float]:
    # the features of these alerts' addresses only, as the stream looks them up per batch
    features = features[features["address"].isin(alerts["address"])] if len(features) else features
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        scoring.score_alerts(alerts, features)
        out.append(time.perf_counter() - started)
    return out


def measure(versions: dict[str, RiskScoring], alerts: pd.DataFrame,
            features: pd.DataFrame) -> dict[str, dict[str, float]]:
    one, batch = alerts.head(1), alerts.head(BATCH)
    single: dict[str, list[float]] = {k: [] for k in versions}
    batches: dict[str, list[float]] = {k: [] for k in versions}
    for scoring in versions.values():  # warm: first calls build caches
        _timings(scoring, batch, features, 2)
    for _ in range(4):  # interleaved rounds
        for name, scoring in versions.items():
            single[name] += _timings(scoring, one, features, SINGLE_CALLS // 4)
            batches[name] += _timings(scoring, batch, features, BATCH_CALLS // 4)
    out = {}
    for name in versions:
        s, b = np.array(single[name]) * 1000, np.array(batches[name]) * 1000
        out[name] = {"one_alert_p50_ms": round(float(np.percentile(s, 50)), 3),
                     "one_alert_p99_ms": round(float(np.percentile(s, 99)), 3),
                     "batch_p50_ms": round(float(np.percentile(b, 50)), 3),
                     "batch_p99_ms": round(float(np.percentile(b, 99)), 3),
                     "batch_size": len(batch),
                     "alerts_per_s": round(len(batch) / float(np.percentile(b, 50)) * 1000, 1)}
    return out


def performance(candidate: RiskScoring, champion: RiskScoring | None, alerts: pd.DataFrame,
                features: pd.DataFrame, memory_mb: dict[str, float]) -> Check:
    versions = {"candidate": candidate, **({"champion": champion} if champion else {})}
    figures: dict = measure(versions, alerts, features)
    for name, mb in memory_mb.items():
        if name in figures:
            figures[name]["loaded_mb"] = round(mb, 1)
    if champion is None:
        return Check("performance", True, figures, {}, "no champion to compare with")
    c, k = figures["candidate"], figures["champion"]
    # Medians decide: a p99 of a few dozen calls on a shared box is its noisiest call (p99s
    # are reported beside them).
    ratios = {"one_alert_p50": c["one_alert_p50_ms"] / k["one_alert_p50_ms"],
              "batch_p50": c["batch_p50_ms"] / k["batch_p50_ms"],
              "alerts_per_s": k["alerts_per_s"] / c["alerts_per_s"]}
    if c.get("loaded_mb") and k.get("loaded_mb") and k["loaded_mb"] > 1:
        ratios["loaded_mb"] = c["loaded_mb"] / k["loaded_mb"]
    figures["slowdown_vs_champion"] = {n: round(v, 3) for n, v in ratios.items()}
    failed = [f"{n} {v:.2f}× the champion's" for n, v in ratios.items() if v > MAX_SLOWDOWN]
    return Check("performance", not failed, figures, {"max_slowdown_vs_champion": MAX_SLOWDOWN},
                 "; ".join(failed))
