"""The worker's read API on the real engine: ranked scores equal to the ``alert_rankings`` view,
an alert's rows across model versions, clusters, and 400/404 for bad parameters and unknown ids."""

from __future__ import annotations

import urllib.parse

import orjson
import pytest

from tests.stream_harness import LAST, home_copy, produce, query, sot_records, stream_env

pytestmark = pytest.mark.integration


def test_scores_alerts_and_clusters_read_from_a_running_worker(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    v1, day = prepared["v1"], LAST.isoformat()
    expected = query(home, "SELECT alert_id, score, rank_score, rank_position FROM amlscore.alert_rankings "
                           "WHERE processing_date = {day:Date} AND model_version = {v:String} "
                           "ORDER BY rank_position", day=day, v=v1)
    clusters = query(home, "SELECT cluster_id, score FROM amlscore.cluster_scores FINAL "
                           "WHERE processing_date = {day:Date} ORDER BY score DESC, cluster_id", day=day)
    worker = spawn(stream_env(home, broker))

    def get(path: str, **params) -> tuple[int, dict]:
        status, body = worker.get(path + ("?" + urllib.parse.urlencode(params) if params else ""))
        return status, orjson.loads(body)

    pages = []
    for offset in range(0, len(expected), 400):  # paginated: every alert once, in ranking order
        status, page = get("/scores", network="ethereum", date=day, window_days=7, limit=400,
                           offset=offset)
        assert status == 200 and page["model_version"] == v1 and page["total"] == len(expected)
        pages += page["items"]
    assert [(r["alert_id"], r["score"], r["rank_score"], r["rank_position"]) for r in pages] == \
        [(r["alert_id"], r["score"], r["rank_score"], r["rank_position"]) for r in expected]
    assert isinstance(pages[0]["explanation"], list) and pages[0]["risk_level"]

    alert_id = expected[0]["alert_id"]
    status, history = get(f"/alerts/{alert_id}")
    assert status == 200 and {r["model_version"] for r in history["scores"]} == {v1}
    assert history["scores"][0]["score"] == expected[0]["score"]

    status, page = get("/clusters", network="ethereum", date=day, limit=5)
    assert status == 200 and page["total"] == len(clusters)
    assert [r["cluster_id"] for r in page["items"]] == [r["cluster_id"] for r in clusters[:5]]

    assert get("/alerts/no-such-alert")[0] == 404
    for bad in ({"date": day}, {"network": "ethereum", "date": "2025-13-01"},
                {"network": "Ethereum Main", "date": day}, {"network": "ethereum", "date": day, "limit": 0},
                {"network": "ethereum", "date": day, "limit": 5000}, {"network": "ethereum", "date": day,
                                                                      "offset": -1, "x": "1"}):
        status, body = get("/scores", **bad)
        assert status == 400 and body["error"], bad
    status, body = get("/scores", network="ethereum", date=day, limit=0)
    assert "limit" in body["error"]
    status, page = get("/scores", network="ethereum", date="2030-01-01")
    assert status == 200 and page["total"] == 0 and page["items"] == []


def test_drift_of_live_alerts_shows_the_shifted_feature(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    records, report = sot_records(broker, prepared["sot"], LAST, features="embed", clusters=False)
    shifted = [(t, k, orjson.dumps({**(e := orjson.loads(v)), "volume_usd": e["volume_usd"] * 20}))
               for t, k, v in records]
    worker = spawn(stream_env(home, broker))
    produce(broker.bootstrap, shifted)
    worker.wait_for('amlscore_scored_total{kind="alert"}', report.alerts)
    status, body = worker.get("/drift")
    drift = orjson.loads(body)
    assert status == 200 and drift["rows"] == report.alerts and drift["model_version"] == prepared["v1"]
    features = drift["features"]
    assert features["volume_usd"]["psi"] > 0.25 and features["volume_usd"]["status"] == "act"
    others = [v["psi"] for k, v in features.items() if k != "volume_usd" and v["psi"] is not None]
    assert others and max(others) < 0.1
    assert worker.wait_for('amlscore_feature_psi{feature="volume_usd"}', 0.25, timeout=45) > 0.25
    assert worker.get("/ready")[0] == 200  # readiness does not depend on drift
