"""Train alert_scorer, alert_ranker and cluster_scorer over a date range.

Temporal split: the last ``holdout_days`` dates are held out and only used for the report; the
last training date before them is the early-stopping validation slice. Nothing is evaluated on
data it was trained on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from batch.capacity import queue_figures
from batch.dataset import Labels, TrainingData, label_clusters, load_training_data
from batch.evaluate import binary_metrics, choose_rank_source, ranking_metrics
from batch.models import FitResult, fit_binary, fit_ranker
from batch.report import write_report
from shared import drift
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.registry_store import RegistryStore
from shared.cluster_features import ClusterFeatureSpec, build_cluster_matrix, fit_cluster_spec
from shared.errors import TrainingRefused
from shared.features import FeatureSpec, build_alert_matrix, fit_feature_spec
from shared.registry import DirectoryModelRegistry
from shared.suppression import choose_threshold


@dataclass(frozen=True)
class TrainConfig:
    networks: tuple[str, ...]
    start: dt.date
    end: dt.date
    window_days: int = 7
    holdout_days: int | None = None
    seed: int = 42
    threads: int = 2
    min_labelled: int = 100
    min_positives: int = 10
    promote: bool = True
    review_capacity: int = 100        # alerts a day the analysts review (AMLSCORE_REVIEW_CAPACITY)
    suppress_max_miss: float = 0.01   # the suppression threshold's bound (AMLSCORE_SUPPRESS_MAX_MISS)


@dataclass
class TrainResult:
    version: str
    metrics: dict
    report_dir: Path
    rounds: dict[str, int] = field(default_factory=dict)
    promoted: bool = False
    refused: str | None = None        # why the version was not promoted (its validation failed)


# Called with (version, the training data, the held-out dates) once the version is registered,
# before it is promoted: the version's validation (batch.validation), while the data is at hand.
Gate = Callable[[str, TrainingData, list[str]], tuple[bool, str]]


def split_dates(dates: Sequence[str], holdout_days: int | None) -> tuple[list[str], list[str], list[str]]:
    """(fit dates, validation dates, held-out dates), in time order."""
    dates = sorted(pd.Series(dates).unique())
    holdout = holdout_days if holdout_days is not None else max(1, round(0.2 * len(dates)))
    if len(dates) < holdout + 1:
        raise TrainingRefused(
            f"need more than {holdout} dates to hold out {holdout}; the range has {len(dates)}")
    train, held = dates[:-holdout], dates[-holdout:]
    if len(train) >= 3:
        return train[:-1], train[-1:], held
    return train, [], held


def _require(name: str, labels: np.ndarray, cfg: TrainConfig, part: str) -> None:
    labelled = labels[~np.isnan(labels)]
    positives = int(labelled.sum())
    negatives = len(labelled) - positives
    if part == "training" and len(labelled) < cfg.min_labelled:
        raise TrainingRefused(
            f"{name}: only {len(labelled)} labelled rows in the training dates (need "
            f"{cfg.min_labelled}); widen --start/--end, load more address labels or import "
            "investigators' decisions (`amlscore dispositions import`)")
    minimum = cfg.min_positives if part == "training" else 1
    if positives < minimum or negatives < minimum:
        raise TrainingRefused(
            f"{name}: the {part} dates have {positives} positive and {negatives} negative labelled "
            f"rows (need at least {minimum} of each); a one-class model would be a constant")


def _parts(dates: pd.Series, fit_dates: list[str], valid_dates: list[str]) -> np.ndarray:
    return np.select([dates.isin(fit_dates).to_numpy(), dates.isin(valid_dates).to_numpy()],
                     ["fit", "valid"], "held")


def _fingerprint(*arrays: np.ndarray, names: Sequence[str]) -> str:
    digest = hashlib.sha256("\x1f".join(names).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _rows(rows: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive positions as a slice: the frames are read in batch order, and a
    slice of a frame is a view where positions make a copy of every column."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def cluster_feature_matrix(data: TrainingData, spec: ClusterFeatureSpec,
                           alert_matrix: np.ndarray) -> np.ndarray:
    """Cluster features per batch, so member ids resolve only within their own batch."""
    width = len(spec.names)
    out = np.full((len(data.clusters), width), np.nan, dtype=np.float32)
    alert_groups = data.alerts.groupby(["network", "processing_date"], sort=False).indices
    alert_ids = data.alerts["alert_id"].to_numpy(dtype=object)  # once, not once per batch
    for key, rows in data.clusters.groupby(["network", "processing_date"], sort=False).indices.items():
        members = _rows(alert_groups.get(key, np.empty(0, dtype=np.int64)))
        rows = _rows(rows)
        ids = pd.Index(alert_ids[members])
        out[rows], _ = build_cluster_matrix(spec, data.clusters.iloc[rows], ids, alert_matrix[members])
    return out


@dataclass
class ClusterFit:
    model: FitResult | None
    spec: ClusterFeatureSpec | None
    matrix: np.ndarray
    skipped: str | None = None   # why no cluster_scorer was trained
    metrics: dict | None = None


@dataclass
class ClusterInputs:
    spec: ClusterFeatureSpec | None
    matrix: np.ndarray
    skipped: str | None = None   # no clusters in the range


def _cluster_inputs(data: TrainingData, spec: FeatureSpec, x: np.ndarray, dates: tuple[list, list],
                    cfg: TrainConfig) -> ClusterInputs:
    clusters = data.clusters
    if not len(clusters):
        return ClusterInputs(None, np.empty((0, 0), dtype=np.float32),
                             f"no clusters between {cfg.start} and {cfg.end}")
    fit_dates, valid_dates = dates
    cluster_spec = fit_cluster_spec(clusters[clusters["processing_date"].isin(fit_dates + valid_dates)],
                                    spec.names)
    return ClusterInputs(cluster_spec, cluster_feature_matrix(data, cluster_spec, x))


def _fit_clusters(data: TrainingData, inputs: ClusterInputs, cy: np.ndarray, dates: tuple[list, list],
                  cfg: TrainConfig) -> ClusterFit:
    """cluster_scorer, or the reason there is none: a range without (labelled) clusters is valid
    data, and the alert models are trained all the same."""
    empty = np.empty((0, 0), dtype=np.float32)
    if inputs.spec is None:
        return ClusterFit(None, None, empty, inputs.skipped)
    clusters, cx = data.clusters, inputs.matrix
    fit_dates, valid_dates = dates
    c_part = _parts(clusters["processing_date"], fit_dates, valid_dates)
    try:
        _require("cluster_scorer", cy[c_part != "held"], cfg, "training")
        _require("cluster_scorer", cy[c_part == "held"], cfg, "held-out")
    except TrainingRefused as exc:
        return ClusterFit(None, None, empty, str(exc))
    c_labelled = ~np.isnan(cy)
    c_fit, c_valid, c_held = (c_labelled & (c_part == p) for p in ("fit", "valid", "held"))
    model = fit_binary(cx[c_fit], cy[c_fit], cx[c_valid], cy[c_valid], list(inputs.spec.names),
                       cfg.seed, cfg.threads)
    held_scores = model.booster.inplace_predict(cx[c_held]).astype(np.float64)
    return ClusterFit(model, inputs.spec, cx[c_labelled], None, binary_metrics(cy[c_held], held_scores))


def _register(registry: DirectoryModelRegistry, registry_table: RegistryStore | None,
              cfg: TrainConfig, version: str, fits: dict[str, tuple[FitResult, list[str], dict]],
              common: dict) -> None:
    """Save every model of the version (artifact + metadata) and record it in
    ``model_registry`` as a candidate."""
    for name, (fit, feature_names, extra) in fits.items():
        registry.save(version, name, fit.booster, {**common, **extra, "feature_names": feature_names,
                                                    "params": fit.params, "rounds": fit.rounds,
                                                    "rounds_run": fit.rounds_run})
    if registry_table is None:
        return
    metrics = common["metrics"]
    for name, (_fit, feature_names, _) in fits.items():
        registry_table.register(
            version=version, name=name, status="candidate",
            path=str(registry.version_dir(version) / f"{name}.ubj"), feature_names=feature_names,
            train_start=cfg.start, train_end=cfg.end, networks=cfg.networks,
            metrics=metrics.get(name, metrics["ranking"]["mean"]), fingerprint=common["data_fingerprint"])


def _held_out_queue(alerts: pd.DataFrame, held: np.ndarray, y: np.ndarray, scores: np.ndarray,
                    rank_scores: np.ndarray, cfg: TrainConfig) -> tuple[dict, dict]:
    """(operating points at capacity, the suppression threshold) on every held-out alert: the
    queue holds labelled and unlabelled alerts alike; only labelled ones count as outcomes."""
    points = queue_figures(alerts[held], rank_scores, y[held], cfg.review_capacity)
    return points, choose_threshold(scores, y[held], cfg.suppress_max_miss).to_dict()


def label_report(counts: dict, source: np.ndarray, train_rows: np.ndarray) -> dict:
    """Where the labels came from: the run's label use and as-of time, and labelled alerts per
    source in the training and the held-out dates."""
    def per_source(rows: np.ndarray) -> dict[str, int]:
        return {"dispositions": int((rows & (source == "disposition")).sum()),
                "addresses": int((rows & (source == "address")).sum())}
    return {"use": counts["use"], "as_of": counts["as_of"], "decisions_read": counts["decisions_read"],
            "training": per_source(train_rows), "held_out": per_source(~train_rows)}


def train(store: RawStore, registry: DirectoryModelRegistry, cfg: TrainConfig,
          registry_table: RegistryStore | None = None,
          progress: Callable[[str], None] = lambda step: None, gate: Gate | None = None,
          labels: Labels | None = None) -> TrainResult:
    """``progress`` hears of each long step as it begins (the CLI prints it). With
    ``cfg.promote`` the version is promoted when ``gate`` (its validation) passes it, or at once
    when there is no gate. ``labels``: which labels, as of when (default: address labels only);
    training and the held-out evaluation both see only decisions made by ``labels.as_of``."""
    progress(f"reading alerts, features and clusters {cfg.start}..{cfg.end}")
    data = load_training_data(store, cfg.networks, cfg.start, cfg.end, cfg.window_days, labels)
    if not len(data.alerts):
        raise TrainingRefused(
            f"no alerts for {','.join(cfg.networks)} between {cfg.start} and {cfg.end} "
            f"(window {cfg.window_days}); run `amlscore ingest` first")
    fit_dates, valid_dates, held_dates = split_dates(data.alerts["processing_date"], cfg.holdout_days)
    alerts = data.alerts
    part = _parts(alerts["processing_date"], fit_dates, valid_dates)
    train_rows = part != "held"

    progress(f"building the feature matrix of {len(alerts):,} alerts")
    with ThreadPoolExecutor(1, thread_name_prefix="train-cluster-labels") as pool:
        # Labelling clusters and fitting the feature spec are each Python work on one core:
        # side by side they use both (the matrix after them uses both on its own).
        cluster_labels = pool.submit(label_clusters, data.clusters, alerts)
        spec = fit_feature_spec(alerts, data.features, alert_rows=train_rows,
                                feature_rows=data.features["processing_date"].isin(fit_dates + valid_dates).to_numpy())
        x = build_alert_matrix(spec, alerts, data.features, threads=cfg.threads)
        cy = cluster_labels.result()
    y = alerts["label"].to_numpy()
    labelled = ~np.isnan(y)
    _require("alert_scorer", y[train_rows], cfg, "training")
    _require("alert_scorer", y[part == "held"], cfg, "held-out")
    names = list(spec.names)

    fit_mask, valid_mask, held_mask = (labelled & (part == p) for p in ("fit", "valid", "held"))
    progress(f"building the cluster features of {len(data.clusters):,} clusters")
    with ThreadPoolExecutor(1, thread_name_prefix="train-drift") as pool:
        # The drift reference is numpy work on columns, mostly without Python's lock; the cluster
        # features are Python work on one core. Side by side they use both cores, where each
        # alone would leave one idle (the fits after them keep both busy).
        drift_reference = pool.submit(drift.reference, x[train_rows], names)
        cluster_inputs = _cluster_inputs(data, spec, x, (fit_dates, valid_dates), cfg)
        reference = drift_reference.result()
    progress(f"fitting alert_scorer and alert_ranker on {int(fit_mask.sum()):,} labelled alerts")
    scorer = fit_binary(x[fit_mask], y[fit_mask], x[valid_mask], y[valid_mask], names, cfg.seed, cfg.threads)
    qid_codes = pd.factorize(alerts["network"] + "|" + alerts["processing_date"])[0]
    ranker = fit_ranker(x[fit_mask], y[fit_mask], qid_codes[fit_mask], x[valid_mask], y[valid_mask],
                        qid_codes[valid_mask], names, cfg.seed, cfg.threads)
    query = (alerts["network"] + "/" + alerts["processing_date"]).to_numpy()
    rank_source, rank_why, rank_figures = choose_rank_source(
        query[valid_mask], y[valid_mask], ranker.booster.inplace_predict(x[valid_mask]),
        scorer.booster.inplace_predict(x[valid_mask]))
    progress("fitting cluster_scorer")
    clusters = _fit_clusters(data, cluster_inputs, cy, (fit_dates, valid_dates), cfg)

    # Every held-out alert is predicted once: the labelled ones for the metrics, all of them for
    # the queue at capacity and the suppression share.
    held_all = part == "held"
    all_scores = scorer.booster.inplace_predict(x[held_all]).astype(np.float64)
    all_ranker = ranker.booster.inplace_predict(x[held_all]).astype(np.float64)
    all_rank = all_ranker if rank_source == "ranker" else all_scores
    in_held = labelled[held_all]
    held_y = y[held_mask]
    held_scores, held_ranker, held_rank = all_scores[in_held], all_ranker[in_held], all_rank[in_held]
    groups = query[held_mask]
    # Addresses recur: a held-out alert of an address labelled in training is partly a lookup.
    # The unseen-address figures say how the model does on addresses it has never been told about.
    address_key = alerts["network"] + "|" + alerts["address"].astype(str)
    seen = address_key[labelled & train_rows].unique()
    held_seen = address_key.isin(seen).to_numpy()[held_mask]
    unseen = ~held_seen
    capacity, suppression = _held_out_queue(alerts, held_all, y, all_scores, all_rank, cfg)
    metrics = {
        "alert_scorer": binary_metrics(held_y, held_scores),
        "capacity": capacity,
        "suppression": suppression,
        "alert_scorer_unseen_addresses": binary_metrics(held_y[unseen], held_scores[unseen]),
        "ranking": ranking_metrics(groups, held_y, {"ranker": held_ranker, "classifier_baseline": held_scores}),
        "rank_score": {"source": rank_source, "why": rank_why, "validation": rank_figures},
        "cluster_scorer": clusters.metrics if clusters.model else {"skipped": clusters.skipped},
        "labels": label_report(data.label_counts, alerts["label_source"].to_numpy(), train_rows),
    }
    fingerprint = _fingerprint(x[labelled & train_rows], y[labelled & train_rows], clusters.matrix,
                               names=names)
    version = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{fingerprint[:8]}"
    split = {"fit_dates": fit_dates, "validation_dates": valid_dates, "holdout_dates": held_dates}
    fits: dict[str, tuple[FitResult, list[str], dict]] = {
        "alert_scorer": (scorer, names, {"feature_spec": spec.to_dict(),
                                         "drift_reference": reference,
                                         "suppression": suppression}),
        "alert_ranker": (ranker, names, {"feature_spec": spec.to_dict(), "rank_source": rank_source,
                                         "rank_source_why": rank_why}),
    }
    if clusters.model is not None and clusters.spec is not None:
        fits["cluster_scorer"] = (clusters.model, list(clusters.spec.names),
                                  {"cluster_spec": clusters.spec.to_dict()})
    common = {
        "training_range": {"networks": list(cfg.networks), "start": cfg.start.isoformat(),
                           "end": cfg.end.isoformat(), "window_days": cfg.window_days, **split},
        "data_fingerprint": fingerprint,
        "metrics": metrics,
        "cluster_scorer_skipped": clusters.skipped,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    report_dir = registry.version_dir(version) / "report"
    progress(f"writing the held-out report and registering {version}")
    write_report(report_dir, version, metrics, split, {
        "alert_ids": alerts["alert_id"].to_numpy()[held_mask], "groups": groups, "labels": held_y,
        "scores": held_scores, "rank_scores": held_rank, "seen_address": held_seen,
        "label_source": alerts["label_source"].to_numpy()[held_mask],
    }, scorer.booster, names)
    _register(registry, registry_table, cfg, version, fits, common)
    result = TrainResult(version, metrics, report_dir,
                         {name: fit.rounds for name, (fit, _, _) in fits.items()})
    if cfg.promote:
        passed, why = gate(version, data, held_dates) if gate else (True, "")
        if passed:
            registry.promote(version)
            if registry_table is not None:
                registry_table.mark_promoted(version)
            result.promoted = True
        else:
            result.refused = why
    return result
