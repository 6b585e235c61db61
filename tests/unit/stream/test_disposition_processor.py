"""The dispositions processor against an in-memory store: valid decisions written before the
batch is answered, bad ones dead-lettered with their reason, a store that is down retried whole."""

import datetime as dt

import orjson
import pytest

from stream.boundary import MicroBatch, Reason, ScoringRequest, SinkUnavailable
from stream.scoring.dispositions import DispositionProcessor

NOW = dt.datetime.now(dt.UTC)


class MemoryStore:
    def __init__(self, down: bool = False, refuse: frozenset = frozenset()):
        self.down, self.refuse, self.rows = down, refuse, []

    def write(self, events, source, recorded_at=None):
        if self.down:
            raise ConnectionError("down")
        if self.refuse & {e.alert_id for e in events}:
            raise RuntimeError("Code: 131. DB::Exception: String too large")
        self.rows += [(e, source) for e in events]


def decision(alert_id: str, **changes) -> bytes:
    return orjson.dumps({"alert_id": alert_id, "network": "ethereum", "processing_date": "2025-01-05",
                         "window_days": 7, "disposition": "true_positive", "analyst": "dana",
                         "decided_at": (NOW - dt.timedelta(hours=1)).isoformat(), **changes})


def request(values: list[bytes]) -> ScoringRequest:
    n = len(values)
    return ScoringRequest("disposition", MicroBatch("aml.dispositions", [b"k"] * n, values, [0] * n,
                                                    list(range(n)), [None] * n), {"aml.alerts.dlq": 4})


def test_valid_decisions_are_written_and_bad_ones_dead_lettered():
    store = MemoryStore()
    values = [decision("a-1", sar_filed=True, note=None), decision("a-2", disposition="false_positive"),
              decision("a-3", disposition="suspicious"), b"{oops",
              decision("a-4", decided_at=(NOW + dt.timedelta(days=1)).isoformat()),
              decision("a-5", analyst="")]
    outcome = DispositionProcessor(store, 65536, "aml.alerts.dlq").process(request(values))
    assert [(e.alert_id, e.disposition, e.sar_filed, e.note, s) for e, s in store.rows] == [
        ("a-1", "true_positive", True, "", "stream"), ("a-2", "false_positive", False, "", "stream")]
    assert outcome.decisions == {"true_positive": 1, "false_positive": 1}
    assert outcome.scores is None and outcome.scored == 0
    assert sorted((d.message.offset, d.reason) for d in outcome.dead) == [
        (2, Reason.SCHEMA), (3, Reason.INVALID_JSON), (4, Reason.SCHEMA), (5, Reason.SCHEMA)]
    assert "future" in next(d.error for d in outcome.dead if d.message.offset == 4)


def test_a_store_that_is_down_fails_the_batch_for_a_retry():
    with pytest.raises(SinkUnavailable):
        DispositionProcessor(MemoryStore(down=True), 65536, "aml.alerts.dlq").process(request([decision("a-1")]))


def test_rows_the_store_refuses_are_dead_lettered_and_the_rest_written():
    store = MemoryStore(refuse=frozenset({"a-2"}))
    outcome = DispositionProcessor(store, 65536, "aml.alerts.dlq", schema_problems=lambda: []).process(
        request([decision("a-1"), decision("a-2"), decision("a-3")]))
    assert [e.alert_id for e, _ in store.rows] == ["a-1", "a-3"]
    assert [(d.message.offset, d.reason) for d in outcome.dead] == [(1, Reason.SINK_REJECTED)]
