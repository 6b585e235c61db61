"""Run every check of a version on one range of alerts and keep the verdict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from batch.capacity import queue_figures
from batch.dataset import TrainingData
from batch.validation import report as files
from batch.validation.checks import Check, Scored, behaviour, ground_truth, integrity, score
from batch.validation.determinism import determinism, digest
from batch.validation.performance import performance
from batch.validation.serving import serving
from batch.validation.status import files_fingerprint, report_dir
from shared.errors import AmlScoreError
from shared.registry import DirectoryModelRegistry
from shared.scoring import RiskScoring, ScoringPolicy


@dataclass(frozen=True)
class ValidationConfig:
    policy: ScoringPolicy
    review_capacity: int = 100
    runs: int = 3                  # fresh processes of the determinism check
    tolerance_scale: float = 1.0   # × checks.TOLERANCE: how much worse than the champion passes


def held_out_dates(registry: DirectoryModelRegistry, version: str) -> tuple[list[str], dt.date, dt.date, int]:
    """(networks, first and last held-out date, window) the version was evaluated on."""
    span = registry.metadata(version).get("training_range", {})
    dates = span.get("holdout_dates") or []
    if not dates:
        raise AmlScoreError(f"{version} records no held-out dates: pass --start and --end")
    return (span.get("networks", []), dt.date.fromisoformat(min(dates)),
            dt.date.fromisoformat(max(dates)), int(span.get("window_days", 7)))


def restrict(data: TrainingData, dates: list[str]) -> TrainingData:
    """The part of ``data`` on ``dates`` (train validates on its held-out dates)."""
    def on(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["processing_date"].isin(dates)].reset_index(drop=True) if len(frame) else frame
    return TrainingData(on(data.alerts), on(data.features), on(data.clusters))


def _points(scoring: RiskScoring, scored_rank: np.ndarray, alerts: pd.DataFrame, capacity: int) -> dict:
    return {"version": scoring.model_version,
            **queue_figures(alerts, scored_rank, alerts["label"].to_numpy(dtype=np.float64), capacity)}


def _trained_on(registry: DirectoryModelRegistry, version: str) -> set[str]:
    span = registry.metadata(version).get("training_range", {})
    return set(span.get("fit_dates", [])) | set(span.get("validation_dates", []))


def _against_champion(registry: DirectoryModelRegistry, scored: Scored, champion: Scored | None,
                      alerts: pd.DataFrame, labels: np.ndarray, cfg: ValidationConfig) -> Check:
    """Ground truth on the dates neither version was trained on: a champion scored on its own
    training dates would look better than it is."""
    if champion is None:
        return ground_truth(scored, None, alerts, labels, cfg.review_capacity)
    seen = _trained_on(registry, champion.version) | _trained_on(registry, scored.version)
    fair = ~alerts["processing_date"].astype(str).isin(seen).to_numpy()
    if not fair.any():
        return Check("ground_truth", True, {"dates_left_out": len(seen)}, {},
                     f"not compared: {champion.version} or the candidate was trained on every date of "
                     "the range; validate on later dates (--start/--end) to compare them")
    rows = np.flatnonzero(fair)
    check = ground_truth(scored.take(rows), champion.take(rows), alerts.iloc[rows].reset_index(drop=True),
                         labels[rows], cfg.review_capacity, cfg.tolerance_scale)
    check.figures["alerts_compared"] = len(rows)
    check.figures["alerts_left_out_trained_on"] = int(len(alerts) - len(rows))
    return check


def validate(registry: DirectoryModelRegistry, version: str, champion_version: str | None,
             data: TrainingData, span: dict, cfg: ValidationConfig, client: Client | None = None,
             database: str = "amlscore", progress: Callable[[str], None] = lambda step: None) -> dict:
    """Every check of ``version`` on ``data`` (one range, labelled where labels exist), against
    ``champion_version`` when given; the report is written to the version's report folder."""
    alerts, features = data.alerts, data.features
    if not len(alerts):
        raise AmlScoreError(f"no alerts to validate {version} on in {span}")
    candidate = RiskScoring(registry.load(version), cfg.policy)
    champion = (RiskScoring(registry.load(champion_version), cfg.policy)
                if champion_version and champion_version != version else None)
    labels = alerts["label"].to_numpy(dtype=np.float64)
    progress(f"scoring {len(alerts):,} alerts with {version}" + (f" and {champion.model_version}" if champion else ""))
    scored = score(candidate, alerts, features)
    champion_scored = score(champion, alerts, features) if champion else None
    checks: list[Check] = [integrity(candidate, alerts, scored)]
    progress(f"determinism: {cfg.runs} fresh processes, each also with another predict thread count")
    check, memory = determinism(registry.models_dir, version, cfg.policy, alerts, features,
                                digest(scored.frame), cfg.runs,
                                champion.model_version if champion else None)
    checks += [check, behaviour(scored, labels), _against_champion(
        registry, scored, champion_scored, alerts, labels, cfg)]
    progress("performance against the champion")
    checks.append(performance(candidate, champion, alerts, features, memory))
    progress("serving: the read API's queries over the scored range")
    checks.append(serving(client, database, scored))
    failed = [c for c in checks if not c.passed]
    capacity = {"candidate": _points(candidate, scored.rank_scores, alerts, cfg.review_capacity)}
    if champion_scored is not None:
        capacity["champion"] = _points(champion, champion_scored.rank_scores, alerts, cfg.review_capacity)
    report = {
        "version": version, "champion": champion.model_version if champion else None,
        "range": span, "alerts": int(len(alerts)), "labelled": int((~np.isnan(labels)).sum()),
        "passed": not failed, "failed": [c.name for c in failed],
        "failed_line": "; ".join(f"{c.name}: {c.why}" for c in failed) or None,
        "checks": {c.name: c.to_dict() for c in checks}, "capacity": capacity,
        "fingerprint": files_fingerprint(registry, version),
        "validated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    files.write(report_dir(registry, version), report)
    return report
