import orjson
import pytest

from shared.schemas import ScoreEvent
from stream.messages import Inbound, Reason, decode_alerts, decode_clusters

VALID = {"alert_id": "a1", "network": "ethereum", "processing_date": "2025-01-02", "window_days": 7,
         "address": "0xa", "typology_type": "mixing", "volume_usd": 10.5, "severity": "high",
         "risk_indicators": ["x"], "features": {"degree_in": 3, "velocity_score": None},
         "some_future_field": {"ignored": True}}


def _msg(value: bytes, offset: int = 0) -> Inbound:
    return Inbound(b"k", value, "aml.alerts", 2, offset)


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
])
def test_each_kind_of_bad_input_has_its_reason(value, reason):
    valid, dead = decode_alerts([_msg(value)], ["ethereum"], max_bytes=4096)
    assert not valid and len(dead) == 1
    assert dead[0].reason == reason and dead[0].error


def test_valid_events_pass_and_unknown_fields_are_ignored():
    valid, dead = decode_alerts([_msg(orjson.dumps(VALID))], ["ethereum"], 4096)
    assert not dead
    event = valid[0][1]
    assert event.features == {"degree_in": 3.0, "velocity_score": None}
    assert event.alert_confidence_score is None and event.pattern_type == ""


def test_dead_letter_keeps_bytes_and_says_where_from():
    _, dead = decode_alerts([_msg(b"{nope", offset=41)], None, 4096)
    out = dead[0].to_outbound("aml.alerts.dlq")
    headers = dict(out.headers)
    assert out.topic == "aml.alerts.dlq" and out.key == b"k" and out.value == b"{nope"
    assert headers["dlq.reason"] == b"invalid_json" and headers["dlq.offset"] == b"41"
    assert headers["dlq.partition"] == b"2" and headers["dlq.source_topic"] == b"aml.alerts"


def test_cluster_events_decode_with_the_same_rules():
    cluster = {"cluster_id": "c1", "network": "ethereum", "processing_date": "2025-01-02",
               "window_days": 7, "related_alert_ids": ["a1", "a2"], "total_alerts": 2}
    valid, dead = decode_clusters([_msg(orjson.dumps(cluster)), _msg(b"{}")], ["ethereum"], 4096)
    assert len(valid) == 1 and dead[0].reason == Reason.SCHEMA


def test_score_event_contract_rejects_out_of_range():
    event = {"network": "e", "processing_date": "2025-01-02", "window_days": 7, "alert_id": "a",
             "address": "x", "score": 1.5, "rank_score": 0.1, "risk_level": "low",
             "model_version": "v", "explanation": [], "scored_at": "2025-01-02T00:00:00+00:00",
             "source": "stream"}
    with pytest.raises(ValueError):
        ScoreEvent.model_validate(event)
