"""The disposition contract: what a decision must hold, the label it gives, and the API body."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from batch.dataset import apply_labels
from shared.read_api import MAX_DECISION_BYTES, BadRequest, parse_decision
from shared.schemas import DispositionEvent, disposition_label

BASE = {"alert_id": "a-1", "network": "ethereum", "processing_date": "2025-01-05", "window_days": 7,
        "disposition": "false_positive", "analyst": "dana", "decided_at": "2025-01-06T09:30:00"}


def test_a_decision_without_a_zone_is_utc_and_one_in_the_future_is_refused():
    assert DispositionEvent.model_validate(BASE).decided_at == dt.datetime(2025, 1, 6, 9, 30, tzinfo=dt.UTC)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    with pytest.raises(ValidationError, match="future"):
        DispositionEvent.model_validate({**BASE, "decided_at": later})
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()  # clock skew allowed
    assert DispositionEvent.model_validate({**BASE, "decided_at": soon})
    for bad in ({"disposition": "maybe"}, {"analyst": ""}, {"note": "x" * 5000}, {"window_days": 0}):
        with pytest.raises(ValidationError):
            DispositionEvent.model_validate({**BASE, **bad})


@pytest.mark.parametrize(("disposition", "sar", "label"), [
    ("true_positive", False, 1.0), ("escalated", False, 1.0), ("false_positive", True, 1.0),
    ("false_positive", False, 0.0), ("inconclusive", True, 1.0)])
def test_labels_from_decisions(disposition, sar, label):
    assert disposition_label(disposition, sar) == label


def test_inconclusive_gives_no_label():
    assert np.isnan(disposition_label("inconclusive", False))


def test_a_decision_takes_precedence_over_the_address_label_and_inconclusive_falls_back():
    keys = {"network": "ethereum", "processing_date": "2025-01-05", "window_days": 7}
    alerts = pd.DataFrame([{**keys, "alert_id": f"a-{i}", "address": f"0x{i}"} for i in range(4)])
    addresses = pd.DataFrame({"network": ["ethereum"] * 3, "address": ["0x0", "0x1", "0x2"],
                              "risk_level": ["high", "low", "critical"]})
    decisions = pd.DataFrame([{**keys, "alert_id": "a-0", "disposition": "false_positive", "sar_filed": False},
                              {**keys, "alert_id": "a-2", "disposition": "inconclusive", "sar_filed": False},
                              {**keys, "alert_id": "a-3", "disposition": "escalated", "sar_filed": False}])
    label, source = apply_labels(alerts, addresses, decisions, "both")
    assert label.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert source.tolist() == ["disposition", "address", "address", "disposition"]
    label, source = apply_labels(alerts, addresses, decisions, "dispositions")
    assert np.isnan(label[[1, 2]]).all() and source.tolist() == ["disposition", "", "", "disposition"]
    label, source = apply_labels(alerts, addresses, decisions, "addresses")
    assert label[:3].tolist() == [1.0, 0.0, 1.0] and np.isnan(label[3])


def test_the_api_body_takes_the_analyst_from_the_token_and_says_what_is_wrong():
    body = b'{"network": "ethereum", "processing_date": "2025-01-05", "disposition": "escalated"}'
    now = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
    event = parse_decision("a-9", body, "alice", now=now)
    assert (event.alert_id, event.analyst, event.decided_at, event.window_days) == ("a-9", "alice", now, 7)
    for bad, words in ((b"", "body"), (b"[]", "body"), (b'{"network": "ethereum"}', "disposition"),
                       (body[:-1] + b', "analyst": "mallory"}', "analyst"),
                       (b"x" * (MAX_DECISION_BYTES + 1), "limit")):
        with pytest.raises(BadRequest, match=words):
            parse_decision("a-9", bad, "alice")
