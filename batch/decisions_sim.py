"""A simulated investigation team for synthetic data: each day it reviews the top
``capacity`` alerts of each network in the order a team without amlscore works them (severity,
then the alert's own confidence) and decides each from the generator's truth, wrong with
probability ``error_rate``, some inconclusive, each after an exponentially distributed delay.
Decisions that would lie in the future (a synthetic day not yet reviewed) are not made."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SEVERITY_ORDER = {"critical": 3, "high": 2, "medium": 1, "low": 0}
ANALYSTS = ("analyst-1", "analyst-2", "analyst-3", "analyst-4")
INCONCLUSIVE_SHARE = 0.05   # decisions the team could not settle
SAR_SHARE = 0.6             # true positives reported to the FIU
ESCALATED_SHARE = 0.15      # true positives handed to a senior investigator instead


@dataclass(frozen=True)
class TeamConfig:
    capacity: int = 100           # alerts reviewed per network per day
    error_rate: float = 0.05      # share of decisions that get the truth wrong
    delay_hours: float = 36.0     # mean hours from the day's alerts to a decision


def legacy_order(severity: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Indices in the order the team works without a model: severity, then confidence."""
    rank = np.array([SEVERITY_ORDER.get(str(s), 0) for s in severity], dtype=np.int64)
    conf = np.where(np.isnan(confidence), -1.0, confidence)
    return np.lexsort((-conf, -rank))


def decide_day(network: str, date: dt.date, window_days: int, alerts: pa.Table, illicit: np.ndarray,
               team: TeamConfig, rng: np.random.Generator, now: dt.datetime) -> list[dict]:
    """One day's decisions (DispositionEvent fields) for one network's alerts."""
    confidence = np.asarray(alerts.column("alert_confidence_score").to_numpy(zero_copy_only=False),
                            dtype=np.float64)
    order = legacy_order(np.asarray(alerts.column("severity").to_pylist()), confidence)
    reviewed = order[:team.capacity]
    ids = alerts.column("alert_id").to_pylist()
    day_end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), dt.UTC)
    decisions = []
    for i in reviewed:
        truth = bool(illicit[i])
        seen = truth != (rng.random() < team.error_rate)
        roll = rng.random()
        if roll < INCONCLUSIVE_SHARE:
            disposition, sar = "inconclusive", False
        elif seen:
            disposition = "escalated" if rng.random() < ESCALATED_SHARE else "true_positive"
            sar = disposition == "true_positive" and rng.random() < SAR_SHARE
        else:
            disposition, sar = "false_positive", False
        decided_at = day_end + dt.timedelta(hours=float(rng.exponential(team.delay_hours)))
        if decided_at > now:
            continue
        decisions.append({"alert_id": ids[i], "network": network, "processing_date": date,
                          "window_days": window_days, "disposition": disposition,
                          "analyst": ANALYSTS[int(rng.integers(len(ANALYSTS)))],
                          "decided_at": decided_at.replace(microsecond=0), "note": "", "sar_filed": sar})
    return decisions


def decisions_table(decisions: list[dict]) -> pa.Table:
    """The file ``amlscore dispositions import`` reads."""
    return pa.table({
        "alert_id": pa.array([d["alert_id"] for d in decisions], pa.string()),
        "network": pa.array([d["network"] for d in decisions], pa.string()),
        "processing_date": pa.array([d["processing_date"] for d in decisions], pa.date32()),
        "window_days": pa.array([d["window_days"] for d in decisions], pa.int32()),
        "disposition": pa.array([d["disposition"] for d in decisions], pa.string()),
        "analyst": pa.array([d["analyst"] for d in decisions], pa.string()),
        "decided_at": pa.array([d["decided_at"] for d in decisions], pa.timestamp("s", tz="UTC")),
        "note": pa.array([d["note"] for d in decisions], pa.string()),
        "sar_filed": pa.array([d["sar_filed"] for d in decisions], pa.bool_()),
    })
