"""The simulated team: it reviews the top of the legacy queue, decides from the truth (wrong at
the error rate), after a delay, and makes no decision that would lie in the future."""

import datetime as dt

import numpy as np
import pyarrow as pa

from batch.decisions_sim import TeamConfig, decide_day, legacy_order

DAY = dt.date(2025, 1, 5)


def alerts(n: int) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({"alert_id": [f"a-{i}" for i in range(n)],
                     "severity": rng.choice(["low", "medium", "high", "critical"], n).tolist(),
                     "alert_confidence_score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n))})


def test_the_legacy_order_is_severity_then_confidence_missing_last():
    order = legacy_order(np.array(["low", "critical", "high", "critical"]), np.array([0.9, np.nan, 0.2, 0.1]))
    assert order.tolist() == [3, 1, 2, 0]


def test_the_team_reviews_its_capacity_and_decides_from_the_truth():
    table, illicit = alerts(400), np.arange(400) % 3 == 0
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    made = decide_day("ethereum", DAY, 7, table, illicit, TeamConfig(50, 0.0, 12.0),
                      np.random.default_rng(2), now)
    top = set(np.asarray(table.column("alert_id").to_pylist())[legacy_order(
        np.asarray(table.column("severity").to_pylist()), table.column("alert_confidence_score").to_numpy())[:50]])
    assert len(made) == 50 and {d["alert_id"] for d in made} == top
    truth = dict(zip(table.column("alert_id").to_pylist(), illicit, strict=True))
    for d in made:
        if d["disposition"] != "inconclusive":
            assert (d["disposition"] in ("true_positive", "escalated")) == truth[d["alert_id"]]
        assert d["decided_at"] >= dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
        assert not d["sar_filed"] or d["disposition"] == "true_positive"


def test_errors_happen_at_the_rate_and_future_decisions_are_not_made():
    table, illicit = alerts(2000), np.zeros(2000, dtype=bool)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    made = decide_day("ethereum", DAY, 7, table, illicit, TeamConfig(2000, 0.2, 1.0),
                      np.random.default_rng(3), now)
    wrong = sum(d["disposition"] in ("true_positive", "escalated") for d in made)
    assert 0.15 < wrong / len(made) < 0.25
    soon = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), dt.UTC) + dt.timedelta(hours=1)
    early = decide_day("ethereum", DAY, 7, table, illicit, TeamConfig(2000, 0.0, 1.0),
                       np.random.default_rng(3), soon)
    assert 0 < len(early) < 2000 and all(d["decided_at"] <= soon for d in early)
