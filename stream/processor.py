"""Batch processors: decode → look up features → score → write durably. No Faust in here.

``process`` runs in the scoring process (stream/scoring_process.py) and returns only once every
row of the batch is written (or the worker is stopping). What it returns — score events and dead letters — the agent publishes
before it acknowledges anything.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
import pandas as pd
import pyarrow as pa

from shared.clickhouse.ddl import RAW_ALERT_COLUMNS
from shared.clickhouse.rows import conform, stamp
from shared.cluster_features import cluster_members
from shared.schemas import AlertEvent
from shared.scoring import RiskScoring
from stream.feature_lookup import CachedFeatureLookup
from stream.messages import DeadLetter, Inbound, Outbound, Reason, decode_alerts, decode_clusters
from stream.metrics import WorkerMetrics
from stream.model_holder import ModelHolder
from stream.retry import Backoff, retry_blocking
from stream.sinks import StreamSink

ALERT_FIELDS = ["network", "processing_date", "window_days", *RAW_ALERT_COLUMNS]


@dataclass(frozen=True)
class StreamConfig:
    scores_topic: str = "aml.alert-scores"
    dlq_topic: str = "aml.alerts.dlq"
    max_message_bytes: int = 1_048_576
    networks: tuple[str, ...] | None = None  # None: the networks the model was trained on
    cluster_member_wait: float = 5.0


@dataclass
class BatchResult:
    outbound: list[Outbound] = field(default_factory=list)
    scored: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    model_version: str | None = None


class MemberSource(Protocol):
    def alerts_by_id(self, network: str, processing_date: dt.date, window_days: int,
                     alert_ids: Sequence[str]) -> pd.DataFrame: ...

    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame: ...


def alerts_frame(events: Sequence[AlertEvent]) -> pd.DataFrame:
    # Field values straight from each model's __dict__ (model_dump re-validates and copies).
    return pd.DataFrame({name: [e.__dict__[name] for e in events] for name in ALERT_FIELDS})


def raw_alert_rows(alerts: pd.DataFrame, version: int) -> pa.Table:
    source = pa.Table.from_pandas(alerts, preserve_index=False)
    n = source.num_rows
    keys = {
        "network": source.column("network").cast(pa.string()),
        "processing_date": pa.array(list(alerts["processing_date"]), pa.date32()),
        "window_days": source.column("window_days").cast(pa.uint16()),
    }
    return stamp({**keys, **conform(source, RAW_ALERT_COLUMNS)}, n, version)


def score_events(scores: pd.DataFrame, topic: str, scored_at: str) -> list[Outbound]:
    """One ScoreEvent per row, keyed by alert_id (columns read once, not row by row)."""
    dates = [d.isoformat() for d in scores["processing_date"]]
    return [
        Outbound(topic, alert_id.encode(), orjson.dumps({
            "network": network, "processing_date": date, "window_days": int(window),
            "alert_id": alert_id, "address": address, "score": float(score),
            "rank_score": float(rank), "risk_level": level, "model_version": version,
            "explanation": orjson.Fragment(explanation),  # already JSON, written by RiskScoring
            "scored_at": scored_at, "source": "stream",
        }))
        for network, date, window, alert_id, address, score, rank, level, version, explanation in zip(
            scores["network"], dates, scores["window_days"], scores["alert_id"], scores["address"],
            scores["score"].to_numpy(), scores["rank_score"].to_numpy(), scores["risk_level"],
            scores["model_version"], scores["explanation"], strict=True)
    ]


class AlertBatchProcessor:
    def __init__(self, holder: ModelHolder, lookup: CachedFeatureLookup, sink: StreamSink,
                 config: StreamConfig, metrics: WorkerMetrics, stopping: threading.Event,
                 backoff: Backoff | None = None) -> None:
        self.holder, self.lookup, self.sink, self.config = holder, lookup, sink, config
        self.metrics, self.stopping, self.backoff = metrics, stopping, backoff or Backoff()

    def _features(self, events: Sequence[AlertEvent]) -> pd.DataFrame:
        keys = [(e.network, e.processing_date.isoformat(), e.window_days, e.address)
                for e in events if e.features is None]
        frames = []
        if keys:
            frames.append(retry_blocking(
                "feature lookup", lambda: self.lookup.lookup(keys), self.backoff, self.stopping,
                lambda _e: self.metrics.sink_failures.inc(stage="lookup")))
        embedded = [
            {"network": e.network, "processing_date": e.processing_date.isoformat(),
             "window_days": e.window_days, "address": e.address, **e.features}
            for e in events if e.features is not None
        ]
        # Embedded rows last: for an address given both ways in one batch, the event's own wins.
        frames.append(pd.DataFrame(embedded))
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else None

    def _score(self, scoring: RiskScoring, alerts: pd.DataFrame,
               features: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[int, str]]:
        try:
            return scoring.score_alerts(alerts, features), {}
        except Exception:  # noqa: BLE001 - isolate the rows that cannot be scored
            parts, failed = [], {}
            for i in range(len(alerts)):
                try:
                    parts.append(scoring.score_alerts(alerts.iloc[[i]], features))
                except Exception as exc:  # noqa: BLE001
                    failed[i] = f"{type(exc).__name__}: {exc}"
            return (pd.concat(parts, ignore_index=True) if parts else scoring.score_alerts(alerts.iloc[:0], None)), failed

    def process(self, messages: Sequence[Inbound]) -> BatchResult:
        scoring = self.holder.scoring  # one model per batch: a hot swap lands between batches
        networks = self.config.networks or self.holder.networks or None
        valid, dead = decode_alerts(messages, networks, self.config.max_message_bytes)
        result = BatchResult(model_version=scoring.model_version)
        if valid:
            events = [event for _, event in valid]
            alerts = alerts_frame(events)
            scores, failed = self._score(scoring, alerts, self._features(events))
            dead += [DeadLetter(valid[i][0], Reason.SCORING_ERROR, error) for i, error in failed.items()]
            if failed:
                alerts = alerts.drop(index=list(failed)).reset_index(drop=True)
            scored_at = dt.datetime.now(dt.UTC)
            raw = raw_alert_rows(alerts, time.time_ns() // 1000)
            retry_blocking("sink write", lambda: self.sink.write_alerts(raw, scores, scored_at),
                           self.backoff, self.stopping, lambda _e: self.metrics.sink_failures.inc(stage="alerts"))
            result.outbound = score_events(scores, self.config.scores_topic, scored_at.isoformat())
            result.scored = len(scores)
        result.dead = dead
        result.outbound += [d.to_outbound(self.config.dlq_topic) for d in dead]
        return result


class ClusterBatchProcessor:
    def __init__(self, holder: ModelHolder, members: MemberSource, sink: StreamSink,
                 config: StreamConfig, metrics: WorkerMetrics, stopping: threading.Event,
                 backoff: Backoff | None = None) -> None:
        self.holder, self.members, self.sink, self.config = holder, members, sink, config
        self.metrics, self.stopping, self.backoff = metrics, stopping, backoff or Backoff()

    def _member_rows(self, clusters: pd.DataFrame, key: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Member alerts and their features, waiting a little for members still in flight."""
        network, date, window = key
        wanted = sorted({m for ids in cluster_members(clusters) for m in ids})
        deadline = time.monotonic() + self.config.cluster_member_wait
        while True:
            alerts = retry_blocking("member lookup", lambda: self.members.alerts_by_id(network, date, window, wanted),
                                    self.backoff, self.stopping)
            if len(alerts) >= len(wanted) or time.monotonic() >= deadline or self.stopping.wait(0.5):
                break
        addresses = sorted(set(alerts["address"].astype(str)))
        features = retry_blocking("member features", lambda: self.members.features(network, date, window, addresses),
                                  self.backoff, self.stopping)
        return alerts, features

    def process(self, messages: Sequence[Inbound]) -> BatchResult:
        scoring = self.holder.scoring
        networks = self.config.networks or self.holder.networks or None
        valid, dead = decode_clusters(messages, networks, self.config.max_message_bytes)
        result = BatchResult(model_version=scoring.model_version)
        if valid:
            clusters = pd.DataFrame([e.model_dump() for _, e in valid])
            parts = []
            for key, rows in clusters.groupby(["network", "processing_date", "window_days"], sort=True).groups.items():
                group = clusters.loc[rows]
                alerts, features = self._member_rows(group, key)
                parts.append(scoring.score_clusters_from_alerts(group, alerts, features))
            scores = pd.concat(parts, ignore_index=True)
            scored_at = dt.datetime.now(dt.UTC)
            retry_blocking("sink write", lambda: self.sink.write_clusters(scores, scored_at), self.backoff,
                           self.stopping, lambda _e: self.metrics.sink_failures.inc(stage="clusters"))
            result.scored = len(scores)
        result.dead = dead
        result.outbound = [d.to_outbound(self.config.dlq_topic) for d in dead]
        return result

