"""``alert_dispositions`` on the real engine: every decision kept, the latest one made by a time
is the alert's label as of that time, and the figures behind the worker's decision gauges."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.clickhouse.disposition_store import DispositionStore
from shared.schemas import DispositionEvent

pytestmark = pytest.mark.integration
DAY = dt.date(2025, 1, 5)
SCORED = dt.datetime(2025, 1, 6, 0, 0, tzinfo=dt.UTC)


def decision(alert_id: str, disposition: str, hours: float, **extra) -> DispositionEvent:
    return DispositionEvent(alert_id=alert_id, network="ethereum", processing_date=DAY, window_days=7,
                            disposition=disposition, analyst=extra.pop("analyst", "dana"),
                            decided_at=SCORED + dt.timedelta(hours=hours), **extra)


@pytest.fixture
def store(chdb_client, database):
    rows = [("ethereum", DAY, 7, f"a-{i}", f"0x{i}", "v1", 0.5, 0.5, level, "[]", SCORED, "stream", False)
            for i, level in enumerate(["high", "high", "high", "low", "low"])]
    chdb_client.insert(f"{database}.alert_scores", rows, column_names=[
        "network", "processing_date", "window_days", "alert_id", "address", "model_version", "score",
        "rank_score", "risk_level", "explanation", "scored_at", "source", "qc_sample"])
    store = DispositionStore(chdb_client, database)
    store.write([decision("a-0", "inconclusive", 1), decision("a-0", "true_positive", 5, sar_filed=True),
                 decision("a-1", "false_positive", 2), decision("a-2", "escalated", 10),
                 decision("a-3", "false_positive", 4)], "stream")
    store.write([decision("a-4", "true_positive", 30, analyst="erin")], "api")
    return store


def test_the_latest_decision_made_by_the_time_is_the_label(store):
    def latest(hours: float) -> dict[str, str]:
        frame = store.latest(["ethereum"], DAY, DAY, 7, SCORED + dt.timedelta(hours=hours))
        return dict(zip(frame["alert_id"], frame["disposition"], strict=True))
    assert latest(3) == {"a-0": "inconclusive", "a-1": "false_positive"}
    assert latest(24) == {"a-0": "true_positive", "a-1": "false_positive", "a-2": "escalated",
                          "a-3": "false_positive"}
    assert latest(48)["a-4"] == "true_positive"
    assert store.any()


def test_every_decision_is_kept_and_writing_it_again_adds_nothing(store):
    store.write([decision("a-0", "true_positive", 5, sar_filed=True)], "import")
    history = store.history("a-0")
    assert [(h["disposition"], h["sar_filed"]) for h in history] == [("inconclusive", False), ("true_positive", True)]
    assert history[1]["source"] == "import"  # the same decision again: replaced, not added


def test_figures_per_risk_band(store):
    figures = store.figures()
    assert figures["decisions"] == {"inconclusive": 1, "true_positive": 2, "false_positive": 2, "escalated": 1}
    high, low = figures["bands"]["high"], figures["bands"]["low"]
    assert high["decided"] == 3 and high["true_positive_share"] == pytest.approx(2 / 3)
    assert high["median_hours_to_decision"] == pytest.approx(5.0)
    assert low["decided"] == 2 and low["true_positive_share"] == pytest.approx(0.5)
    assert low["median_hours_to_decision"] == pytest.approx(17.0)
