"""RiskScoring: the one scoring core that the stream worker and the batch backfill both call.

Every model runs once per batch (vectorised), with a fixed thread count, on a matrix built by the
shared feature builder, so an alert gets the same score bit for bit whatever batch it arrives in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import xgboost as xgb

from shared.cluster_features import build_cluster_matrix
from shared.columns import as_objects, day_numbers
from shared.features import AddressRows, AlertColumns, build_alert_matrix, row_count
from shared.pandas_gate import load_pandas
from shared.registry import ModelBundle
from shared.settings import Settings
from shared.suppression import qc_sample

if TYPE_CHECKING:
    import pandas as pd  # the batch's frames; the stream's alert path passes arrays and never loads it

RISK_LEVELS = np.array(["low", "medium", "high", "critical"], dtype=object)
ALERT_SCORE_COLUMNS = [
    "network", "processing_date", "window_days", "alert_id", "address", "score", "rank_score",
    "risk_level", "explanation", "model_version", "qc_sample",
]
SUPPRESSIBLE = "suppressible"  # the risk level of an alert below the version's suppression threshold
CLUSTER_SCORE_COLUMNS = [
    "network", "processing_date", "window_days", "cluster_id", "score", "risk_level",
    "n_alerts", "n_alerts_found", "model_version",
]


@dataclass(frozen=True)
class ScoringPolicy:
    risk_bands: tuple[float, float, float] = (0.10, 0.30, 0.60)
    explain_min_score: float = 0.30  # the high band: the alerts investigators open first
    explain_top_k: int = 5
    predict_threads: int = 1
    suppress: bool = False         # alerts below the version's threshold become "suppressible"
    qc_share: float = 0.02         # ... except this deterministic share, kept as a QC sample

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoringPolicy:
        return cls(tuple(settings.risk_bands), settings.explain_min_score,
                   settings.explain_top_k, settings.predict_threads,
                   settings.suppress, settings.suppress_qc_share)


def risk_levels(scores: np.ndarray, bands: tuple[float, float, float]) -> np.ndarray:
    return RISK_LEVELS[np.digitize(scores, np.asarray(bands), right=False)]


ScoreColumns = dict[str, np.ndarray]  # ALERT_SCORE_COLUMNS → one array each, rows in input order


def _key_columns(rows: Mapping[str, Any], id_column: str) -> ScoreColumns:
    """The key columns of score rows, as arrays; ``processing_date`` as datetime64[D]."""
    return {
        "network": as_objects(rows["network"]),
        "processing_date": day_numbers(rows["processing_date"]),
        "window_days": np.asarray(rows["window_days"]).astype("int64"),
        id_column: as_objects(rows[id_column]),
    }


def score_frame(columns: ScoreColumns) -> pd.DataFrame:
    """Score columns as a DataFrame (for batch callers), dates as date objects."""
    pd = load_pandas()

    frame = pd.DataFrame(columns, copy=False)
    frame["processing_date"] = columns["processing_date"].astype(object)
    return frame


@dataclass(frozen=True)
class PendingExplanations:
    """Explanations computed but not yet formatted: the explained rows' positions, their matrix
    rows and their contributions."""

    rows: np.ndarray
    values: np.ndarray
    contributions: np.ndarray


class RiskScoring:
    def __init__(self, bundle: ModelBundle, policy: ScoringPolicy | None = None) -> None:
        self.bundle = bundle
        self.policy = policy or ScoringPolicy()
        for model in (bundle.alert_scorer, bundle.alert_ranker, bundle.cluster_scorer):
            if model is None:
                continue
            # One thread per predict call by default: determinism and no oversubscription
            # under a worker that already runs one process per core.
            model.booster.set_param({"nthread": self.policy.predict_threads})

    @property
    def model_version(self) -> str:
        return self.bundle.version

    @property
    def ranks_by_score(self) -> bool:
        """True when training found the learning-to-rank model no better than sorting by the
        classifier on the validation dates: ``rank_score`` is then the classifier's score."""
        return self.bundle.alert_ranker.metadata.get("rank_source", "ranker") == "classifier"

    @property
    def suppression_threshold(self) -> float | None:
        """The score below which alerts are suppressible, when suppression is on and the version
        carries a threshold (chosen at training on held-out alerts; 0 suppresses nothing)."""
        if not self.policy.suppress:
            return None
        chosen = self.bundle.alert_scorer.metadata.get("suppression")
        return float(chosen["threshold"]) if chosen else None

    @property
    def scores_clusters(self) -> bool:
        """False for a version trained on data without clusters: clusters are then left unscored."""
        return self.bundle.cluster_scorer is not None

    def _predict(self, booster: xgb.Booster, matrix: np.ndarray) -> np.ndarray:
        if not len(matrix):
            return np.empty(0, dtype=np.float64)
        return booster.inplace_predict(matrix, missing=np.nan).astype(np.float64)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions (log-odds) of the alert scorer per row and feature, bias
        column dropped; XGBoost works without Python's lock."""
        dmatrix = xgb.DMatrix(matrix, missing=np.nan, feature_names=list(self.bundle.feature_spec.names),
                              nthread=self.policy.predict_threads)
        return self.bundle.alert_scorer.booster.predict(dmatrix, pred_contribs=True)[:, :-1]

    def format_explanations(self, matrix: np.ndarray, contributions: np.ndarray) -> list[str]:
        """The top-k contributions of each row, as JSON."""
        names = self.bundle.feature_spec.names
        k = min(self.policy.explain_top_k, contributions.shape[1])
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
        out = []
        for row, top in enumerate(order):
            items = []
            for j in top:
                value = matrix[row, j]
                items.append({
                    "feature": names[j],
                    # Exactly the float32 the model saw (a shorter text would read back
                    # as another number for large values such as timestamps).
                    "value": None if np.isnan(value) else float(value),
                    "contribution": round(float(contributions[row, j]), 6),
                })
            out.append(orjson.dumps(items).decode())
        return out

    def explain(self, matrix: np.ndarray) -> list[str]:
        """Top-k TreeSHAP contributions (log-odds) of the alert scorer, as JSON per row."""
        if not len(matrix):
            return []
        return self.format_explanations(matrix, self.contributions(matrix))

    def alert_matrix(self, alerts: AlertColumns,
                     address_features: pd.DataFrame | AddressRows | None) -> np.ndarray:
        return build_alert_matrix(self.bundle.feature_spec, alerts, address_features)

    def score_matrix(self, alerts: AlertColumns, matrix: np.ndarray) -> pd.DataFrame:
        """Score, rank score and risk band per row; explanations left empty ("[]")."""
        return score_frame(self.score_columns(alerts, matrix))

    def score_columns(self, alerts: AlertColumns, matrix: np.ndarray) -> ScoreColumns:
        """:meth:`score_matrix` as plain arrays (the stream's path builds no DataFrame)."""
        n = row_count(alerts)
        scores = self._predict(self.bundle.alert_scorer.booster, matrix)
        out = _key_columns(alerts, "alert_id")
        out["address"] = as_objects(alerts["address"])
        out["score"] = scores
        out["rank_score"] = (scores.copy() if self.ranks_by_score
                             else self._predict(self.bundle.alert_ranker.booster, matrix))
        out["risk_level"] = risk_levels(scores, self.policy.risk_bands)
        out["qc_sample"] = self._suppress(scores, out["alert_id"], out["risk_level"])
        out["explanation"] = np.full(n, "[]", dtype=object)
        out["model_version"] = np.full(n, self.model_version, dtype=object)
        return {c: out[c] for c in ALERT_SCORE_COLUMNS}

    def _suppress(self, scores: np.ndarray, alert_ids: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Mark alerts below the threshold suppressible in ``levels``, except the QC sample;
        returns the QC flags (true only for alerts kept in the queue by the sample)."""
        qc = np.zeros(len(scores), dtype=bool)
        threshold = self.suppression_threshold
        if not threshold:
            return qc
        below = np.flatnonzero(scores < threshold)
        if len(below):
            sampled = qc_sample(alert_ids[below], self.policy.qc_share)
            qc[below[sampled]] = True
            levels[below[~sampled]] = SUPPRESSIBLE
        return qc

    def pending_explanations(self, scores: pd.DataFrame | ScoreColumns,
                             matrix: np.ndarray) -> PendingExplanations:
        """The model's half of explaining (TreeSHAP of the rows the policy explains: score ≥
        explain_min_score); :meth:`fill_explanations` does the formatting half, possibly on
        another thread."""
        rows = np.flatnonzero(np.asarray(scores["score"]) >= self.policy.explain_min_score)
        values = matrix[rows]
        return PendingExplanations(rows, values, self.contributions(values) if len(rows) else values)

    def fill_explanations(self, scores: pd.DataFrame | ScoreColumns, pending: PendingExplanations) -> None:
        if len(pending.rows):
            column = np.array(scores["explanation"], dtype=object)
            column[pending.rows] = self.format_explanations(pending.values, pending.contributions)
            scores["explanation"] = column

    def add_explanations(self, scores: pd.DataFrame | ScoreColumns, matrix: np.ndarray) -> None:
        """Fill ``explanation`` for the rows the policy explains (score ≥ explain_min_score)."""
        self.fill_explanations(scores, self.pending_explanations(scores, matrix))

    def score_alerts_columns(
        self, alerts: AlertColumns, address_features: pd.DataFrame | AddressRows | None
    ) -> tuple[ScoreColumns, np.ndarray]:
        """Score columns (explained) and the feature matrix they were scored from."""
        matrix = self.alert_matrix(alerts, address_features)
        scores = self.score_columns(alerts, matrix)
        self.add_explanations(scores, matrix)
        return scores, matrix

    def score_alerts_matrix(
        self, alerts: pd.DataFrame, address_features: pd.DataFrame | None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        scores, matrix = self.score_alerts_columns(alerts, address_features)
        return score_frame(scores), matrix

    def score_alerts(
        self, alerts: pd.DataFrame, address_features: pd.DataFrame | None
    ) -> pd.DataFrame:
        return self.score_alerts_matrix(alerts, address_features)[0]

    def score_clusters(
        self, clusters: pd.DataFrame, alert_ids: pd.Index, alert_matrix: np.ndarray
    ) -> pd.DataFrame:
        if self.bundle.cluster_scorer is None or self.bundle.cluster_spec is None:
            raise ValueError(f"model {self.model_version} has no cluster_scorer "
                             f"({self.bundle.cluster_skipped}); check scores_clusters first")
        pd = load_pandas()  # clusters come as frames, in the stream too (they are few)

        matrix, found = build_cluster_matrix(
            self.bundle.cluster_spec, clusters, alert_ids, alert_matrix
        )
        scores = self._predict(self.bundle.cluster_scorer.booster, matrix)
        out = _key_columns(clusters, "cluster_id")
        out["processing_date"] = out["processing_date"].astype(object)
        n_alerts = pd.to_numeric(clusters.get("total_alerts", pd.Series(0, index=clusters.index)),
                                 errors="coerce").fillna(0)
        out["score"] = scores
        out["risk_level"] = risk_levels(scores, self.policy.risk_bands)
        out["n_alerts"] = n_alerts.to_numpy(dtype=np.int64)
        out["n_alerts_found"] = found
        out["model_version"] = np.full(len(clusters), self.model_version, dtype=object)
        return pd.DataFrame({c: out[c] for c in CLUSTER_SCORE_COLUMNS}, copy=False)

    def score_clusters_from_alerts(
        self, clusters: pd.DataFrame, member_alerts: pd.DataFrame,
        address_features: pd.DataFrame | None,
    ) -> pd.DataFrame:
        """Score clusters whose member alerts (with their address features) are given."""
        pd = load_pandas()

        matrix = build_alert_matrix(self.bundle.feature_spec, member_alerts, address_features)
        return self.score_clusters(clusters, pd.Index(member_alerts["alert_id"].astype(str)), matrix)
