"""The alert and cluster processors against an in-memory sink: what is written, when, and what
is returned for publishing."""

import dataclasses

import numpy as np
import orjson
import pytest

from shared.registry import DirectoryModelRegistry
from shared.scoring import RiskScoring, ScoringPolicy
from shared.settings import Settings
from stream.boundary import Inbound, Reason, ScoringRequest, SinkUnavailable
from stream.scoring.address_features import AddressFeatureCache
from stream.scoring.alerts import AlertProcessor, StreamConfig
from stream.scoring.clusters import ClusterProcessor
from stream.scoring.decode import decode_alerts
from stream.scoring.model_holder import ModelHolder
from stream.scoring.partitioning import partitions_for
from tests.unit.stream.batches import micro_batch

CONFIG = StreamConfig.from_settings(Settings())


class MemorySink:
    """Keeps what is written; ``down`` fails every write like a lost connection; ``refuse``
    rejects rows of those alert ids the way ClickHouse rejects a value it cannot store."""

    def __init__(self, down: bool = False, refuse: frozenset = frozenset()):
        self.down, self.refuse = down, refuse
        self.alert_writes, self.cluster_writes, self.unscored_writes = [], [], []

    def write_alerts(self, alerts, scores, scored_at):
        if self.down:
            raise ConnectionError("down")
        if self.refuse & set(scores["alert_id"]):
            raise RuntimeError("Code: 321. DB::Exception: Value out of range of Date")
        self.alert_writes.append((alerts.copy(), scores.copy()))

    def write_clusters(self, scores, scored_at):
        self.cluster_writes.append(scores.copy())

    def write_unscored_clusters(self, clusters, model_version, reason, received_at):
        self.unscored_writes.append((clusters.copy(), model_version, reason))

    def schema_problems(self):
        return []  # the tables are as they should be: rows refused are bad rows

    def ping(self):
        return None


class FrameSource:
    """Features and member alerts from the SOT frames, shaped like the store's answers."""

    def __init__(self, alerts, features):
        self.alerts, self.frame = alerts, features

    def features(self, network, processing_date, window_days, addresses=None):
        rows = self.frame[self.frame.processing_date == processing_date.isoformat()]
        return rows[rows.address.isin(addresses)] if addresses is not None else rows

    def feature_rows(self, network, processing_date, window_days, addresses=None, limit=0):
        rows = self.features(network, processing_date, window_days, addresses)
        columns = [c for c in rows.columns if c not in ("network", "processing_date", "window_days", "address")]
        return list(rows["address"]), columns, rows[columns].to_numpy(dtype=float)

    def alerts_by_id(self, network, processing_date, window_days, alert_ids):
        rows = self.alerts[self.alerts.processing_date == processing_date.isoformat()]
        return rows[rows.alert_id.isin(alert_ids)]


def _request(kind, messages, final=True):
    return ScoringRequest(kind, micro_batch(messages), {"aml.alert-scores": 4, "aml.alerts.dlq": 4}, final)


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


def _processor(holder, sot_frames, sink):
    alerts, features, _, _ = sot_frames
    return AlertProcessor(holder, AddressFeatureCache(FrameSource(alerts, features)), sink, CONFIG)


def test_scores_equal_the_batch_path_and_are_written_before_returning(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    sink = MemorySink()
    messages = _events(alerts, features, 120) + [Inbound(b"bad", b"{", "aml.alerts", 0, 999)]
    outcome = _processor(holder, sot_frames, sink).process(_request("alert", messages))
    assert outcome.scored == 120 and len(sink.alert_writes) == 1
    written_alerts, written = sink.alert_writes[0]
    assert len(written_alerts["alert_id"]) == 120 and list(written_alerts["alert_id"]) == list(written["alert_id"])
    reference = RiskScoring(holder.scoring.bundle, ScoringPolicy()).score_alerts(alerts.head(120), features)
    assert np.asarray(written["score"]).tobytes() == reference["score"].to_numpy().tobytes()
    assert list(written["explanation"]) == list(reference["explanation"])
    events = outcome.scores
    assert events.topic == "aml.alert-scores" and len(events) == 120
    assert events.partitions == partitions_for(events.keys, 4)
    assert [d.partition for d in outcome.dead] == partitions_for([d.message.key for d in outcome.dead], 4)
    assert [d.message.value for d in outcome.dead] == [b"{"]
    first = orjson.loads(events.values[0])
    assert first["score"] == reference["score"].iloc[0] and first["model_version"] == "v1"
    assert set(outcome.phases) >= {"decode", "lookup", "predict", "explain", "write", "encode"}


def test_an_unavailable_sink_fails_the_whole_batch_for_the_caller_to_retry(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    with pytest.raises(SinkUnavailable, match="down"):
        _processor(holder, sot_frames, MemorySink(down=True)).process(
            _request("alert", _events(alerts, features, 10)))


def test_rows_the_sink_rejects_are_dead_lettered_alone_and_the_rest_written(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    messages = _events(alerts, features, 40)
    bad = {alerts.alert_id.iloc[7], alerts.alert_id.iloc[30]}
    sink = MemorySink(refuse=frozenset(bad))
    outcome = _processor(holder, sot_frames, sink).process(_request("alert", messages))
    assert outcome.scored == 38 and len(outcome.scores) == 38
    assert {d.reason for d in outcome.dead} == {Reason.SINK_REJECTED}
    assert {d.message.key.decode() for d in outcome.dead} == bad
    written = {a for _, scores in sink.alert_writes for a in scores["alert_id"]}
    assert len(written) == 38 and not written & bad
    assert all("Code: 321" in d.error for d in outcome.dead)


def test_a_feature_named_like_a_key_does_not_replace_the_key(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    messages = _events(alerts, features, 6, embed_every=1)
    poisoned = []
    for m in messages:
        event = orjson.loads(m.value)
        event["features"] = {**event.get("features", {}), "address": 1.0, "network": 2.0}
        poisoned.append(Inbound(m.key, orjson.dumps(event), m.topic, m.partition, m.offset))
    clean = _processor(holder, sot_frames, MemorySink()).process(_request("alert", messages))
    dirty = _processor(holder, sot_frames, MemorySink()).process(_request("alert", poisoned))
    assert dirty.scored == 6 and not dirty.dead
    assert [orjson.loads(v)["score"] for v in dirty.scores.values] == \
        [orjson.loads(v)["score"] for v in clean.scores.values]


class FragileScoring:
    """The real scorer, except that it cannot score one given alert."""

    def __init__(self, scoring, bad_alert_id):
        self.scoring, self.bad = scoring, bad_alert_id
        self.model_version = scoring.model_version

    def alert_matrix(self, frame, features):
        if (np.asarray(frame["alert_id"]) == self.bad).any():
            raise ValueError("cannot score this one")
        return self.scoring.alert_matrix(frame, features)

    def __getattr__(self, name):
        return getattr(self.scoring, name)


class FixedHolder:
    def __init__(self, scoring, networks):
        self.scoring, self.networks = scoring, networks


def test_a_row_that_cannot_be_scored_is_dead_lettered_alone(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    fragile = FixedHolder(FragileScoring(holder.scoring, alerts.alert_id.iloc[3]), holder.networks)
    sink = MemorySink()
    outcome = _processor(fragile, sot_frames, sink).process(_request("alert", _events(alerts, features, 8)))
    assert outcome.scored == 7 and [d.reason for d in outcome.dead] == ["scoring_error"]
    assert len(sink.alert_writes[0][1]["alert_id"]) == 7


def _cluster_messages(rows, **changes):
    messages = []
    for i, row in enumerate(rows.to_dict("records")):
        event = {**{k: row[k] for k in ("cluster_id", "cluster_type", "primary_address", "primary_alert_id",
                                        "total_alerts", "total_volume_usd", "severity_max", "network",
                                        "processing_date", "window_days")},
                 "related_alert_ids": list(row["related_alert_ids"]),
                 "addresses_involved": list(row["addresses_involved"]),
                 "confidence_avg": None if row["confidence_avg"] != row["confidence_avg"] else row["confidence_avg"],
                 **changes}
        messages.append(Inbound(event["cluster_id"].encode(),
                                orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY), "aml.clusters", 0, i))
    return messages


def test_clusters_are_scored_from_their_members(holder, sot_frames):
    alerts, features, clusters, _ = sot_frames
    day = clusters.processing_date.iloc[0]
    rows = clusters[clusters.processing_date == day].head(20)
    sink = MemorySink()
    processor = ClusterProcessor(holder, FrameSource(alerts, features), sink, CONFIG)
    outcome = processor.process(_request("cluster", _cluster_messages(rows), final=False))
    assert outcome.scored == 20 and not outcome.dead and not outcome.members_pending
    written = sink.cluster_writes[0]
    reference = holder.scoring.score_clusters_from_alerts(rows, alerts[alerts.processing_date == day], features)
    assert written["score"].to_numpy().tobytes() == reference["score"].to_numpy().tobytes()
    assert (written["n_alerts_found"] == written["n_alerts"]).all()


def test_clusters_wait_for_members_then_score_what_came_and_dead_letter_what_never_did(holder, sot_frames):
    alerts, features, clusters, _ = sot_frames
    day = clusters.processing_date.iloc[0]
    rows = clusters[clusters.processing_date == day].head(3).reset_index(drop=True)
    partial = _cluster_messages(rows.iloc[[0]])
    event = orjson.loads(partial[0].value)
    event["related_alert_ids"] = event["related_alert_ids"] + ["never-arrives"]
    partial = [Inbound(b"p", orjson.dumps(event), "aml.clusters", 0, 0)]
    orphan = _cluster_messages(rows.iloc[[1]], cluster_id="orphan", primary_alert_id="gone-1",
                               related_alert_ids=["gone-2"])
    orphan = [Inbound(b"o", orphan[0].value, "aml.clusters", 0, 1)]
    sink = MemorySink()
    processor = ClusterProcessor(holder, FrameSource(alerts, features), sink, CONFIG)
    waiting = processor.process(_request("cluster", partial + orphan, final=False))
    assert waiting.members_pending and not sink.cluster_writes and not waiting.dead
    outcome = processor.process(_request("cluster", partial + orphan, final=True))
    assert outcome.scored == 1 and [d.reason for d in outcome.dead] == [Reason.MEMBERS_MISSING]
    assert outcome.dead[0].message.key == b"o"
    written = sink.cluster_writes[0]
    assert list(written["n_alerts_found"]) == [len(event["related_alert_ids"]) - 1 + (
        event["primary_alert_id"] not in event["related_alert_ids"])]


def test_a_model_without_cluster_scorer_leaves_clusters_unscored_without_failing(holder, sot_frames):
    alerts, features, clusters, _ = sot_frames
    bundle = dataclasses.replace(holder.scoring.bundle, cluster_scorer=None, cluster_spec=None,
                                 cluster_skipped="no clusters between 2025-01-01 and 2025-01-06")
    without = FixedHolder(RiskScoring(bundle), holder.networks)
    rows = clusters.head(10)
    sink = MemorySink()
    processor = ClusterProcessor(without, FrameSource(alerts, features), sink, CONFIG)
    outcome = processor.process(_request("cluster", _cluster_messages(rows) + _cluster_messages(
        rows.head(1), network="Not A Network")))
    assert outcome.unscored == 10 and outcome.scored == 0 and not sink.cluster_writes
    assert [d.reason for d in outcome.dead] == ["schema_violation"]  # invalid ones still go to the DLQ
    (stored, version, reason), = sink.unscored_writes  # acknowledged, and kept: not only in Kafka
    assert list(stored["cluster_id"]) == list(rows["cluster_id"]) and version == without.scoring.model_version
    assert "no cluster_scorer" in reason and "no clusters between" in reason


def test_features_no_model_reads_are_dropped_at_decode_whatever_their_number(holder, sot_frames):
    alerts, features, _, _ = sot_frames
    messages = _events(alerts, features, 50, embed_every=1)
    noisy = []
    for j, m in enumerate(messages):  # 1,000 names of its own per event: 50,000 in the batch
        event = orjson.loads(m.value)
        event["features"] = {**event.get("features", {}),
                             **{f"junk_{j}_{k}": float(k) for k in range(1000 - len(event.get("features", {})))}}
        noisy.append(Inbound(m.key, orjson.dumps(event), m.topic, m.partition, m.offset))
    wanted = set(holder.scoring.bundle.feature_spec.address_features)
    decoded = decode_alerts(micro_batch(noisy), None, 1 << 20, wanted)
    assert all(set(e.features) <= wanted for e in decoded.events)
    clean = _processor(holder, sot_frames, MemorySink()).process(_request("alert", messages))
    dirty = _processor(holder, sot_frames, MemorySink()).process(_request("alert", noisy))
    assert dirty.scored == 50 and not dirty.dead
    def scored(outcome):
        return [(e["score"], e["rank_score"], e["explanation"])
                for e in map(orjson.loads, outcome.scores.values)]
    assert scored(dirty) == scored(clean)


@pytest.mark.parametrize("n", [1, 5])
def test_a_batch_whose_every_row_fails_scoring_dead_letters_them_all(holder, sot_frames, n):
    alerts, features, _, _ = sot_frames

    class Hopeless(FragileScoring):
        def alert_matrix(self, frame, features):
            raise ValueError("cannot score any")
    sink = MemorySink()
    broken = FixedHolder(Hopeless(holder.scoring, None), holder.networks)
    outcome = _processor(broken, sot_frames, sink).process(_request("alert", _events(alerts, features, n)))
    assert outcome.scored == 0 and outcome.scores is None and not sink.alert_writes
    assert [d.reason for d in outcome.dead] == [Reason.SCORING_ERROR] * n
