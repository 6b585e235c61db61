"""The worker's read API on the real engine: ranked scores equal to the ``alert_rankings`` view,
an alert's rows across model versions, clusters, and 400/404 for bad parameters and unknown ids."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest

from tests.stream_harness import (
    LAST,
    WorkerProcess,
    home_copy,
    produce,
    query,
    sot_records,
    stream_env,
)

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


def test_reads_need_a_token_on_an_open_bind_and_the_access_log_names_who(prepared, broker, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    token = "0123456789abcdef0123456789abcdef"
    path = f"/scores?network=ethereum&date={LAST.isoformat()}&limit=5"

    def get(worker, url: str, bearer: str | None = None) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{url}")
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    tokens = tmp_path / "tokens"
    tokens.write_text(f"analysts:{token}\n")
    worker = WorkerProcess(stream_env(home, broker, AMLSCORE_WEB_HOST="0.0.0.0",
                                      AMLSCORE_API_TOKEN_FILE=str(tokens)), tmp_path / "worker.log",
                           cwd=tmp_path)
    try:
        worker.start()
        assert get(worker, path) == 401 and get(worker, path, "wrong-token-0123456789") == 401
        assert get(worker, path, token) == 200 and get(worker, "/alerts/x", token) == 404
        assert get(worker, f"{path}&offset={10**30}", token) == 400  # bounded, never an engine error
        assert all(get(worker, p) == 200 for p in ("/live", "/ready", "/metrics"))  # probes stay open
    finally:
        assert worker.stop() == 0
    log = (tmp_path / "worker.log").read_text()
    assert "who=analysts path=/scores status=200" in log and "who=- path=/scores status=401" in log
    assert token not in log

    open_bind = WorkerProcess(stream_env(home, broker, AMLSCORE_WEB_HOST="0.0.0.0"),
                              tmp_path / "open.log", cwd=tmp_path)
    try:
        open_bind.start()
        assert get(open_bind, path) == 403 and get(open_bind, path, token) == 403
        assert get(open_bind, "/live") == 200
    finally:
        assert open_bind.stop() == 0
    assert "AMLSCORE_API_TOKEN" in (tmp_path / "open.log").read_text()  # warned at start
