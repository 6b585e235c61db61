"""The alert and cluster processors against an in-memory sink: what is written, when, and what
is returned for publishing."""

import threading

import orjson
import pytest

from shared.registry import DirectoryModelRegistry
from shared.scoring import RiskScoring, ScoringPolicy
from stream.feature_lookup import CachedFeatureLookup
from stream.messages import Inbound
from stream.metrics import WorkerMetrics
from stream.model_holder import ModelHolder
from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
from stream.retry import Backoff, ShutdownRequested


class MemorySink:
    def __init__(self, failures: int = 0):
        self.failures = failures
        self.alert_writes, self.cluster_writes = [], []

    def write_alerts(self, raw_alerts, scores, scored_at):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("down")
        self.alert_writes.append((raw_alerts, scores.copy()))

    def write_clusters(self, scores, scored_at):
        self.cluster_writes.append(scores.copy())

    def ping(self):
        return None


class FrameSource:
    """Features and member alerts from the SOT frames, shaped like the store's answers."""

    def __init__(self, alerts, features):
        self.alerts, self.frame = alerts, features

    def features(self, network, processing_date, window_days, addresses=None):
        rows = self.frame[self.frame.processing_date == processing_date.isoformat()]
        return rows[rows.address.isin(addresses)] if addresses is not None else rows

    def alerts_by_id(self, network, processing_date, window_days, alert_ids):
        rows = self.alerts[self.alerts.processing_date == processing_date.isoformat()]
        return rows[rows.alert_id.isin(alert_ids)]


@pytest.fixture
def holder(bundle, tmp_path):
    source = DirectoryModelRegistry(tmp_path)
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        model = getattr(bundle, name)
        source.save("v1", name, model.booster, {**model.metadata, "training_range": {"networks": ["ethereum"]}})
    source.promote("v1")
    holder = ModelHolder(source, ScoringPolicy())
    holder.load_initial()
    return holder


def _events(alerts, features, n, embed_every=2):
    out = []
    for i, row in enumerate(alerts.head(n).to_dict("records")):
        event = {k: row[k] for k in ("alert_id", "network", "processing_date", "window_days", "address",
                                     "typology_type", "pattern_id", "pattern_type", "severity",
                                     "suspected_address_type", "suspected_address_subtype",
                                     "description", "volume_usd", "evidence_json")}
        event["alert_confidence_score"] = None if row["alert_confidence_score"] != row["alert_confidence_score"] else row["alert_confidence_score"]
        event["risk_indicators"] = list(row["risk_indicators"])
        if i % embed_every == 0:
            frow = features[(features.address == row["address"]) & (features.processing_date == row["processing_date"])]
            if len(frow):
                event["features"] = {k: (None if v != v else v) for k, v in frow.iloc[0].items()
                                     if k not in ("network", "processing_date", "window_days", "address")}
        value = orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY)
        out.append(Inbound(event["alert_id"].encode(), value, "aml.alerts", 0, i))
    return out


def _processor(holder, sot_frames, sink, stopping=None):
    alerts, features, _, _ = sot_frames
    lookup = CachedFeatureLookup(FrameSource(alerts, features))
    return AlertBatchProcessor(holder, lookup, sink, StreamConfig(), WorkerMetrics(),
                               stopping or threading.Event(), Backoff(0.001, 0.002))


def test_scores_equal_the_batch_path_and_are_written_before_returning(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    sink = MemorySink()
    messages = _events(alerts, features, 120) + [Inbound(b"bad", b"{", "aml.alerts", 0, 999)]
    result = _processor(holder, sot_frames, sink).process(messages)
    assert result.scored == 120 and len(sink.alert_writes) == 1
    raw, written = sink.alert_writes[0]
    assert raw.num_rows == 120 and set(raw.column_names) >= {"alert_id", "_version", "risk_indicators"}
    reference = RiskScoring(holder.scoring.bundle, ScoringPolicy()).score_alerts(alerts.head(120), features)
    assert written["score"].to_numpy().tobytes() == reference["score"].to_numpy().tobytes()
    assert list(written["explanation"]) == list(reference["explanation"])
    score_events = [o for o in result.outbound if o.topic == "aml.alert-scores"]
    dead = [o for o in result.outbound if o.topic == "aml.alerts.dlq"]
    assert len(score_events) == 120 and len(dead) == 1 and dead[0].value == b"{"
    first = orjson.loads(score_events[0].value)
    assert first["score"] == reference["score"].iloc[0] and first["model_version"] == "v1"


def test_sink_failures_are_retried_until_the_write_succeeds(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    sink = MemorySink(failures=3)
    metrics_processor = _processor(holder, sot_frames, sink)
    result = metrics_processor.process(_events(alerts, features, 10))
    assert result.scored == 10 and len(sink.alert_writes) == 1
    assert metrics_processor.metrics.sink_failures.total() == 3


def test_shutdown_during_an_outage_returns_nothing_to_publish(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(ShutdownRequested):
        _processor(holder, sot_frames, MemorySink(failures=10**6), stopping).process(_events(alerts, features, 5))


class FragileScoring:
    """The real scorer, except that it cannot score one given alert."""

    def __init__(self, scoring, bad_alert_id):
        self.scoring, self.bad = scoring, bad_alert_id
        self.model_version = scoring.model_version

    def score_alerts(self, frame, features):
        if (frame["alert_id"] == self.bad).any():
            raise ValueError("cannot score this one")
        return self.scoring.score_alerts(frame, features)


class FixedHolder:
    def __init__(self, scoring, networks):
        self.scoring, self.networks = scoring, networks


def test_a_row_that_cannot_be_scored_is_dead_lettered_alone(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    fragile = FixedHolder(FragileScoring(holder.scoring, alerts.alert_id.iloc[3]), holder.networks)
    sink = MemorySink()
    result = _processor(fragile, sot_frames, sink).process(_events(alerts, features, 8))
    assert result.scored == 7 and [d.reason for d in result.dead] == ["scoring_error"]
    assert sink.alert_writes[0][0].num_rows == 7


def test_clusters_are_scored_from_their_members(holder, sot_frames):
    alerts, features, clusters, _ = sot_frames
    day = clusters.processing_date.iloc[0]
    rows = clusters[clusters.processing_date == day].head(20)
    messages = []
    for i, row in enumerate(rows.to_dict("records")):
        event = {**{k: row[k] for k in ("cluster_id", "cluster_type", "primary_address", "primary_alert_id",
                                        "total_alerts", "total_volume_usd", "severity_max", "network",
                                        "processing_date", "window_days")},
                 "related_alert_ids": list(row["related_alert_ids"]),
                 "addresses_involved": list(row["addresses_involved"]),
                 "confidence_avg": None if row["confidence_avg"] != row["confidence_avg"] else row["confidence_avg"]}
        messages.append(Inbound(b"c", orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY), "aml.clusters", 0, i))
    sink = MemorySink()
    processor = ClusterBatchProcessor(holder, FrameSource(alerts, features), sink, StreamConfig(),
                                      WorkerMetrics(), threading.Event())
    result = processor.process(messages)
    assert result.scored == 20 and not result.outbound
    written = sink.cluster_writes[0]
    reference = holder.scoring.score_clusters_from_alerts(rows, alerts[alerts.processing_date == day], features)
    assert written["score"].to_numpy().tobytes() == reference["score"].to_numpy().tobytes()
    assert (written["n_alerts_found"] == written["n_alerts"]).all()

