import json

import orjson
import pytest

from shared.schemas import ScoreEvent
from stream.boundary import DeadLetter, MicroBatch, Reason
from stream.scoring.decode import decode_alerts, decode_clusters

VALID = {"alert_id": "a1", "network": "ethereum", "processing_date": "2025-01-02", "window_days": 7,
         "address": "0xa", "typology_type": "mixing", "volume_usd": 10.5, "severity": "high",
         "risk_indicators": ["x"], "features": {"degree_in": 3, "velocity_score": None},
         "some_future_field": {"ignored": True}}


def _batch(*values: bytes, first_offset: int = 0) -> MicroBatch:
    n = len(values)
    return MicroBatch("aml.alerts", [b"k"] * n, list(values), [2] * n,
                        list(range(first_offset, first_offset + n)), [None] * n)


@pytest.mark.parametrize(("value", "reason"), [
    (b"{nope", Reason.INVALID_JSON),
    (b"", Reason.EMPTY),
    (orjson.dumps({**VALID, "alert_id": None}), Reason.SCHEMA),
    (orjson.dumps({k: v for k, v in VALID.items() if k != "volume_usd"}), Reason.SCHEMA),
    (orjson.dumps({**VALID, "schema_version": 2}), Reason.SCHEMA),
    (orjson.dumps(VALID).replace(b'"volume_usd":10.5', b'"volume_usd":1e999'), Reason.NON_FINITE),
    (orjson.dumps({**VALID, "features": {"degree_in": "lots"}}), Reason.SCHEMA),
    (orjson.dumps({**VALID, "network": "dogecoin"}), Reason.UNKNOWN_NETWORK),
    (orjson.dumps({**VALID, "description": "x" * 5000}), Reason.OVERSIZE),
    (b"[]", Reason.SCHEMA),
    # ClickHouse's Date cannot hold these: refused here rather than failing (or clamping) a write
    (orjson.dumps({**VALID, "processing_date": "2200-01-01"}), Reason.SCHEMA),
    (orjson.dumps({**VALID, "processing_date": "1900-01-01"}), Reason.SCHEMA),
])
def test_each_kind_of_bad_input_has_its_reason(value, reason):
    decoded = decode_alerts(_batch(value), ["ethereum"], max_bytes=4096)
    assert not decoded.events and len(decoded.dead) == 1
    assert decoded.dead[0].reason == reason and decoded.dead[0].error


def test_valid_events_pass_and_unknown_fields_are_ignored():
    decoded = decode_alerts(_batch(orjson.dumps(VALID)), ["ethereum"], 4096)
    assert not decoded.dead
    event = decoded.events[0]
    assert event.features == {"degree_in": 3.0, "velocity_score": None}
    assert event.alert_confidence_score is None and event.pattern_type == ""


def test_dead_letter_keeps_bytes_and_says_where_from():
    decoded = decode_alerts(_batch(b"{nope", first_offset=41), None, 4096)
    out = DeadLetter.records("aml.alerts.dlq", decoded.dead)
    headers = dict(out.headers[0])
    assert out.topic == "aml.alerts.dlq" and out.keys == [b"k"] and out.values == [b"{nope"]
    assert headers["dlq.reason"] == b"invalid_json" and headers["dlq.offset"] == b"41"
    assert headers["dlq.partition"] == b"2" and headers["dlq.source_topic"] == b"aml.alerts"


def test_an_envelope_is_scored_alert_by_alert_and_a_bad_item_goes_alone_to_the_dlq():
    items = [{**VALID, "alert_id": f"e{i}"} for i in range(4)]
    items[2] = {**items[2], "processing_date": "2200-01-01"}
    envelope = orjson.dumps({"schema_version": 1, "alerts": items})
    decoded = decode_alerts(_batch(orjson.dumps(VALID), envelope), ["ethereum"], 1 << 20)
    assert [e.alert_id for e in decoded.events] == ["a1", "e0", "e1", "e3"]
    assert decoded.sources == [0, 1, 1, 1] and decoded.items == [None, 0, 1, 3]
    (dead,) = decoded.dead
    assert dead.reason == Reason.SCHEMA and dead.envelope_item == 2 and dead.message.offset == 1
    assert orjson.loads(dead.value)["alert_id"] == "e2"  # the item alone, not the whole envelope
    assert dict(dead.headers())["dlq.envelope_item"] == b"2"
    # a later failure of a valid envelope item dead-letters that item alone, too
    letter = decoded.dead_letter(_batch(orjson.dumps(VALID), envelope), 2, Reason.SINK_REJECTED, "no")
    assert orjson.loads(letter.value)["alert_id"] == "e1" and letter.envelope_item == 1
    assert orjson.loads(letter.value) == items[1]  # as it came, unknown fields included


def test_a_valid_envelope_gives_each_alert_as_a_message_of_its_own_would():
    items = [{**VALID, "alert_id": f"e{i}", "event_time": "2025-01-02T03:04:05Z",
              "features": {"degree_in": i, "velocity_score": None}} for i in range(3)]
    items.append({**VALID, "alert_id": "e3", "network": "polygon"})  # not a network this worker takes
    # JSON that orjson refuses, in a field nobody reads: valid as it is as a message of its own
    items.append({**VALID, "alert_id": "nan", "some_future_field": float("nan")})
    batch = _batch(json.dumps({"schema_version": 1, "alerts": items}).encode())
    decoded = decode_alerts(batch, ["ethereum"], 1 << 20)
    alone = [decode_alerts(_batch(orjson.dumps(item)), ["ethereum"], 1 << 20) for item in items[:3]]
    assert decoded.events[:3] == [d.events[0] for d in alone]
    assert decoded.items == [0, 1, 2, 4] and decoded.events[3].alert_id == "nan"
    (wrong_network,) = decoded.dead
    assert wrong_network.reason == Reason.UNKNOWN_NETWORK and wrong_network.envelope_item == 3
    assert json.loads(wrong_network.value) == items[3]
    # a later failure: the item alone, as it came (read again from its message)
    letter = decoded.dead_letter(batch, 1, Reason.SCORING_ERROR, "no")
    assert json.loads(letter.value) == items[1] and letter.envelope_item == 1
    nan = decoded.dead_letter(batch, 3, Reason.SINK_REJECTED, "no")
    assert nan.envelope_item == 4 and json.loads(nan.value)["alert_id"] == "nan"
    assert b"NaN" in nan.value


def test_an_envelope_is_read_again_once_however_many_of_its_items_fail(monkeypatch):
    import stream.scoring.decode as decode_module
    reads = []
    original = decode_module._envelope_items
    monkeypatch.setattr(decode_module, "_envelope_items", lambda value: reads.append(1) or original(value))
    items = [{**VALID, "alert_id": f"p{i}", "network": "polygon"} for i in range(300)]
    batch = _batch(orjson.dumps({"schema_version": 1, "alerts": items}))
    decoded = decode_alerts(batch, ["ethereum"], 1 << 20)  # a whole envelope misrouted
    assert not decoded.events and len(decoded.dead) == 300 and len(reads) == 1
    assert [orjson.loads(d.value)["alert_id"] for d in decoded.dead] == [f"p{i}" for i in range(300)]
    everything = decode_alerts(batch, None, 1 << 20)  # then all of them fail later (a sink, say)
    letters = [everything.dead_letter(batch, i, Reason.SINK_REJECTED, "no") for i in range(300)]
    assert len(reads) == 2 and orjson.loads(letters[-1].value) == items[-1]


def test_a_message_with_an_alert_id_is_an_alert_even_beside_an_alerts_list():
    envelope_items = [{**VALID, "alert_id": "inner"}]
    as_alert = decode_alerts(_batch(orjson.dumps({**VALID, "alerts": envelope_items})), None, 4096)
    assert [e.alert_id for e in as_alert.events] == ["a1"] and as_alert.items == [None]
    broken = {"alert_id": "a2", "alerts": envelope_items}  # an alert missing its fields
    decoded = decode_alerts(_batch(orjson.dumps(broken)), None, 4096)
    assert not decoded.events and decoded.dead[0].reason == Reason.SCHEMA
    assert "address" in decoded.dead[0].error


def test_an_object_that_is_neither_alert_nor_envelope_keeps_the_alert_error():
    decoded = decode_alerts(_batch(orjson.dumps({"alerts": "not a list"})), None, 4096)
    assert decoded.dead[0].reason == Reason.SCHEMA and "alert_id" in decoded.dead[0].error


def test_cluster_events_decode_with_the_same_rules():
    cluster = {"cluster_id": "c1", "network": "ethereum", "processing_date": "2025-01-02",
               "window_days": 7, "related_alert_ids": ["a1", "a2"], "total_alerts": 2}
    decoded = decode_clusters(_batch(orjson.dumps(cluster), b"{}",
                                     orjson.dumps({**cluster, "total_alerts": 2**40})), ["ethereum"], 4096)
    assert len(decoded.events) == 1 and [d.reason for d in decoded.dead] == [Reason.SCHEMA] * 2


def test_score_event_contract_rejects_out_of_range():
    event = {"network": "e", "processing_date": "2025-01-02", "window_days": 7, "alert_id": "a",
             "address": "x", "score": 1.5, "rank_score": 0.1, "risk_level": "low",
             "model_version": "v", "explanation": [], "scored_at": "2025-01-02T00:00:00+00:00",
             "source": "stream"}
    with pytest.raises(ValueError):
        ScoreEvent.model_validate(event)


def test_decode_keeps_only_the_features_a_model_reads_and_leaves_an_event_with_no_others_as_it_came():
    carried = orjson.dumps({**VALID, "features": {"degree_in": 3, "velocity_score": None, "unread": 1.0}})
    read_all = orjson.dumps(VALID)
    decoded = decode_alerts(_batch(carried, read_all, orjson.dumps({**VALID, "features": None})), None,
                            4096, feature_names=("degree_in", "velocity_score", "pagerank"))
    trimmed, whole, none = decoded.events
    assert trimmed.features == {"degree_in": 3.0, "velocity_score": None}  # a null stays a null
    assert whole.features == {"degree_in": 3.0, "velocity_score": None} and none.features is None
    untouched = decode_alerts(_batch(read_all), None, 4096).events[0]
    assert whole == untouched  # nothing to drop: the event as decoded
    only_unread = decode_alerts(_batch(carried), None, 4096, feature_names=("pagerank",)).events[0]
    assert only_unread.features == {}
