"""Batch processors, in the scoring process: decode → features → score → write. No Faust here.

``process`` returns once every scorable row of the batch is durably written, with what the Faust
process must publish (score events, dead letters) before it acknowledges anything. It tries
once: a sink that is unavailable raises :class:`~stream.messages.SinkUnavailable` and the caller
retries the whole batch (writes are idempotent). Nothing about one event can make it raise:
bad events, rows that cannot be scored and rows the sink rejects become dead letters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import orjson
import pandas as pd

from shared.clickhouse.ddl import RAW_ALERT_COLUMNS
from shared.cluster_features import cluster_members
from shared.drift import RollingRows
from shared.features import KEY_COLUMNS, FeatureBlock
from shared.schemas import AlertEvent
from shared.scoring import RiskScoring
from shared.settings import Settings
from stream.decode import Decoded, decode_alerts, decode_clusters
from stream.feature_lookup import CachedFeatureLookup, FeatureRows
from stream.messages import BatchOutcome, BatchRequest, OutboundColumns, Reason, SinkUnavailable
from stream.model_holder import ModelHolder
from stream.partitioning import partitions_for
from stream.shadow import ShadowScorer
from stream.sinks import StreamSink, write_isolating

log = logging.getLogger(__name__)

ALERT_FIELDS = ["network", "processing_date", "window_days", *RAW_ALERT_COLUMNS]


@dataclass(frozen=True)
class StreamConfig:
    """What the processors take from the settings (whose defaults are the only defaults)."""

    scores_topic: str
    max_message_bytes: int
    networks: tuple[str, ...] | None  # None: the networks the model was trained on

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamConfig:
        return cls(settings.scores_topic, settings.max_message_bytes, settings.networks)


class MemberSource(Protocol):
    def alerts_by_id(self, network: str, processing_date: dt.date, window_days: int,
                     alert_ids: Sequence[str]) -> pd.DataFrame: ...

    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame: ...


class PhaseTimer:
    """Seconds spent per named phase of one batch (the per-batch trace)."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started


def unavailable(what: str, func, *args):  # noqa: ANN001, ANN201 - a thin wrapper
    """Reads from the store fail the batch as a whole: the caller retries it later."""
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001
        raise SinkUnavailable.caused_by(exc, what) from exc


def alerts_frame(events: Sequence[AlertEvent]) -> pd.DataFrame:
    # Field values straight from each model's __dict__ (model_dump re-validates and copies), in
    # plain object columns: converting every string column of a small batch costs more than
    # everything the feature builder then does with it.
    return pd.DataFrame({name: [e.__dict__[name] for e in events] for name in ALERT_FIELDS},
                        dtype=object)


def score_events(scores: pd.DataFrame, topic: str, partitions: int, scored_at: str) -> OutboundColumns:
    """One ScoreEvent per row, keyed by alert_id (columns read once as lists, not row by row)."""
    column = {name: scores[name].tolist() for name in (
        "network", "processing_date", "window_days", "alert_id", "address", "score", "rank_score",
        "risk_level", "model_version", "explanation", "qc_sample")}
    iso = {d: d.isoformat() for d in set(column["processing_date"])}
    keys = [a.encode() for a in column["alert_id"]]
    values = [
        orjson.dumps({
            "network": network, "processing_date": iso[date], "window_days": window,
            "alert_id": alert_id, "address": address, "score": score, "rank_score": rank,
            "risk_level": level, "model_version": version,
            "explanation": orjson.Fragment(explanation),  # already JSON, written by RiskScoring
            "qc_sample": qc, "scored_at": scored_at, "source": "stream",
        })
        for network, date, window, alert_id, address, score, rank, level, version, explanation, qc in zip(
            *column.values(), strict=True)
    ]
    return OutboundColumns(topic, keys, values, partitions_for(keys, partitions))


def embedded_rows(events: Sequence[AlertEvent]) -> FeatureRows:
    """The features alerts carry, as one block. A feature named like a key column is left out:
    it must not overwrite the key the rows are joined on."""
    names = dict.fromkeys(itertools.chain.from_iterable(e.features for e in events))
    columns = [c for c in names if c not in KEY_COLUMNS]
    # None (a feature sent as null) becomes NaN in a float64 array
    matrix = np.array([[e.features.get(c) for c in columns] for e in events], dtype=np.float64)
    keys = [(e.network, e.processing_date.isoformat(), e.window_days, e.address) for e in events]
    return FeatureRows(keys, columns, matrix.reshape(len(events), len(columns)))


class AlertBatchProcessor:
    def __init__(self, holder: ModelHolder, lookup: CachedFeatureLookup, sink: StreamSink,
                 config: StreamConfig, live: RollingRows | None = None,
                 shadow: ShadowScorer | None = None) -> None:
        self.holder, self.lookup, self.sink, self.config = holder, lookup, sink, config
        self._schema_problems = getattr(sink, "schema_problems", None)  # optional for a custom sink
        self.live = live  # the last scored rows' features, for drift
        self.shadow = shadow  # the challenger, after the champion has written

    def _features(self, events: Sequence[AlertEvent]) -> FeatureBlock | None:
        keys = [(e.network, e.processing_date.isoformat(), e.window_days, e.address)
                for e in events if e.features is None]
        parts = [unavailable("feature lookup", self.lookup.lookup, keys)] if keys else []
        # Embedded rows last: for an address given both ways in one batch, the event's own wins.
        parts.append(embedded_rows([e for e in events if e.features is not None]))
        rows = FeatureRows.stack(parts)
        return rows.block() if len(rows) else None

    @staticmethod
    def _score(scoring: RiskScoring, alerts: pd.DataFrame,
               features: FeatureBlock | None) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
        try:
            matrix = scoring.alert_matrix(alerts, features)
            return scoring.score_matrix(alerts, matrix), matrix, {}
        except Exception:  # noqa: BLE001 - isolate the rows that cannot be scored
            parts, matrices, failed = [], [], {}
            for i in range(len(alerts)):
                try:
                    row = alerts.iloc[[i]]
                    matrix = scoring.alert_matrix(row, features)
                    parts.append(scoring.score_matrix(row, matrix))
                    matrices.append(matrix)
                except Exception as exc:  # noqa: BLE001
                    failed[i] = f"{type(exc).__name__}: {exc}"
            if not parts:
                return pd.DataFrame(), np.empty((0, 0), np.float32), failed
            return pd.concat(parts, ignore_index=True), np.vstack(matrices), failed

    def _feature_names(self, scoring: RiskScoring) -> set[str]:
        """The address features the champion and the challenger read: all an event may keep."""
        names = set(scoring.bundle.feature_spec.address_features)
        shadow = getattr(self.holder, "shadow", None)
        if shadow is not None:
            names.update(shadow.bundle.feature_spec.address_features)
        return names

    def process(self, request: BatchRequest) -> BatchOutcome:
        timer = PhaseTimer()
        scoring = self.holder.scoring  # one model per batch: a hot swap lands between batches
        networks = self.config.networks or self.holder.networks or None
        batch = request.batch
        with timer("decode"):
            decoded = decode_alerts(batch, networks, self.config.max_message_bytes,
                                    self._feature_names(scoring))
        outcome = BatchOutcome("alert", model_version=scoring.model_version)
        dead = list(decoded.dead)
        events = decoded.events
        if events:
            with timer("frame"):
                alerts = alerts_frame(events)
            with timer("lookup"):
                features = self._features(events)
            with timer("predict"):
                scores, matrix, failed = self._score(scoring, alerts, features)
            dead += [decoded.dead_letter(batch, i, Reason.SCORING_ERROR, e) for i, e in failed.items()]
            if len(failed) < len(events):  # else every row failed: all of them are dead letters
                self._write_scored(scoring, request, decoded, alerts, features, scores, matrix,
                                   failed, dead, outcome, timer)
        outcome.dead = dead
        outcome.phases = timer.phases
        return outcome

    def _write_scored(self, scoring: RiskScoring, request: BatchRequest, decoded: Decoded,
                      alerts: pd.DataFrame, features: FeatureBlock | None, scores: pd.DataFrame,
                      matrix: np.ndarray, failed: dict[int, str], dead: list,
                      outcome: BatchOutcome, timer: PhaseTimer) -> None:
        if self.live is not None:
            self.live.add(matrix)
        keep = [i for i in range(len(alerts)) if i not in failed]
        if failed:
            alerts = alerts.iloc[keep].reset_index(drop=True)
        with timer("explain"):
            scoring.add_explanations(scores, matrix)
        scored_at = dt.datetime.now(dt.UTC)
        with timer("write"):
            rejected = self._write(alerts, scores, scored_at)
        if rejected:
            dead += [decoded.dead_letter(request.batch, keep[i], Reason.SINK_REJECTED, e)
                     for i, e in rejected.items()]
            scores = scores.drop(index=list(rejected)).reset_index(drop=True)
            alerts = alerts.drop(index=list(rejected)).reset_index(drop=True)
        if self.shadow is not None:  # only now: the champion's rows are written
            self.shadow.submit(getattr(self.holder, "shadow", None), alerts, features)
            outcome.shadow = self.shadow.totals()
        if len(scores):
            with timer("encode"):
                outcome.scores = score_events(scores, self.config.scores_topic,
                                              request.score_partitions, scored_at.isoformat())
        outcome.scored = len(scores)

    def _write(self, alerts: pd.DataFrame, scores: pd.DataFrame, scored_at: dt.datetime) -> dict[int, str]:
        n = len(scores)

        def write(rows: np.ndarray) -> None:
            if len(rows) == n:
                self.sink.write_alerts(alerts, scores, scored_at)
            else:
                self.sink.write_alerts(alerts.iloc[rows].reset_index(drop=True),
                                       scores.iloc[rows].reset_index(drop=True), scored_at)
        return write_isolating(write, n, self._schema_problems)


class ClusterBatchProcessor:
    """Clusters are scored from their member alerts. Members still in flight are waited for by
    the caller (``request.final`` False: nothing is written and ``members_pending`` comes back);
    after the wait, a cluster is scored with the members there are, and one none of whose
    members ever came is dead-lettered (``members_missing``)."""

    def __init__(self, holder: ModelHolder, members: MemberSource, sink: StreamSink,
                 config: StreamConfig) -> None:
        self.holder, self.members, self.sink, self.config = holder, members, sink, config
        self._said_unscored: str | None = None  # the version we last said leaves clusters unscored
        self._schema_problems = getattr(sink, "schema_problems", None)  # optional for a custom sink

    def _members(self, group: pd.DataFrame, key: tuple) -> tuple[pd.DataFrame, list[int]]:
        """The member alerts found, and how many each cluster has."""
        network, date, window = key
        members = cluster_members(group)
        wanted = sorted({m for ids in members for m in ids})
        found = unavailable("member lookup", self.members.alerts_by_id, network, date, window, wanted)
        present = set(found["alert_id"].astype(str)) if "alert_id" in found else set()
        return found, [sum(m in present for m in ids) for ids in members]

    def process(self, request: BatchRequest) -> BatchOutcome:
        timer = PhaseTimer()
        scoring = self.holder.scoring
        networks = self.config.networks or self.holder.networks or None
        with timer("decode"):
            decoded: Decoded = decode_clusters(request.batch, networks, self.config.max_message_bytes)
        outcome = BatchOutcome("cluster", model_version=scoring.model_version)
        dead = list(decoded.dead)
        if decoded.events and not scoring.scores_clusters:
            # A version trained on data without clusters: valid clusters are not dead-lettered
            # (nothing is wrong with them) but kept whole in unscored_clusters with the reason,
            # so that nothing acknowledged lives only in Kafka; said once per version.
            if self._said_unscored != scoring.model_version:
                self._said_unscored = scoring.model_version
                log.warning("model %s has no cluster_scorer (%s): clusters are stored unscored",
                            scoring.model_version, scoring.bundle.cluster_skipped)
            clusters = pd.DataFrame([e.model_dump() for e in decoded.events])
            reason = f"model {scoring.model_version} has no cluster_scorer: {scoring.bundle.cluster_skipped}"
            with timer("write"):
                rejected = write_isolating(lambda rows: self.sink.write_unscored_clusters(
                    clusters if len(rows) == len(clusters) else clusters.iloc[rows],
                    scoring.model_version, reason, dt.datetime.now(dt.UTC)), len(clusters),
                    self._schema_problems)
            dead += [decoded.dead_letter(request.batch, i, Reason.SINK_REJECTED, e)
                     for i, e in rejected.items()]
            outcome.unscored = len(clusters) - len(rejected)
        elif decoded.events:
            clusters = pd.DataFrame([e.model_dump() for e in decoded.events])
            groups = clusters.groupby(["network", "processing_date", "window_days"], sort=True).groups
            parts = []
            for key, rows in groups.items():
                group = clusters.loc[rows]
                with timer("lookup"):
                    alerts, found = self._members(group, key)
                if not request.final and any(f < len(m) for f, m in zip(found, cluster_members(group),
                                                                        strict=True)):
                    return BatchOutcome("cluster", members_pending=True, phases=timer.phases)
                none = [i for i, f in zip(rows, found, strict=True) if f == 0]
                dead += [decoded.dead_letter(request.batch, i, Reason.MEMBERS_MISSING,
                                             "none of the cluster's member alerts arrived")
                         for i in none]
                group = group.drop(index=none)
                if len(group):
                    with timer("predict"):
                        addresses = sorted(set(alerts["address"].astype(str)))
                        features = unavailable("member features", self.members.features,
                                               *key, addresses)
                        parts.append((group.index, scoring.score_clusters_from_alerts(
                            group, alerts, features)))
            if parts:
                index = np.concatenate([i for i, _ in parts])
                scores = pd.concat([s for _, s in parts], ignore_index=True)
                scored_at = dt.datetime.now(dt.UTC)
                with timer("write"):
                    rejected = write_isolating(lambda rows: self.sink.write_clusters(
                        scores if len(rows) == len(scores) else scores.iloc[rows], scored_at),
                        len(scores), self._schema_problems)
                dead += [decoded.dead_letter(request.batch, int(index[i]), Reason.SINK_REJECTED, e)
                         for i, e in rejected.items()]
                outcome.scored = len(scores) - len(rejected)
        outcome.dead = dead
        outcome.phases = timer.phases
        return outcome

