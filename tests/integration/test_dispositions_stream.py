"""Investigators' decisions into a running worker, on the real broker and engine: through the
topic (bad ones dead-lettered with their reason) and through the API (400 with the reason, 401
without a token), every decision kept in ``alert_dispositions``; the queue leaves decided alerts
out and is otherwise the ranked order; an alert's answer shows its decisions beside its scores."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest

from tests.stream_harness import LAST, home_copy, produce, query, read_topic, stream_env

pytestmark = pytest.mark.integration
TOKENS = "alice:alice-token-0123456789,bob:bob-token-0123456789ab"
ALICE = "alice-token-0123456789"


def post(port: int, alert_id: str, body: bytes, token: str | None = ALICE) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alerts/{urllib.parse.quote(alert_id)}/disposition", data=body,
        method="POST", headers={"Content-Type": "application/json",
                                **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - a local test worker
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def get(worker, path: str, **params) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}{path}" + ("?" + urllib.parse.urlencode(params) if params else ""),
        headers={"Authorization": f"Bearer {ALICE}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def every_item(worker, path: str, **params) -> list[dict]:
    items, offset = [], 0
    while True:
        status, page = get(worker, path, **params, limit=1000, offset=offset)
        assert status == 200, page
        items += page["items"]
        offset += 1000
        if offset >= page["total"]:
            assert len(items) == page["total"]
            return items


def test_decisions_through_topic_and_api_land_in_the_table_and_leave_the_queue(
        prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    v1, day = prepared["v1"], LAST.isoformat()
    worker = spawn(stream_env(home, broker, AMLSCORE_API_TOKEN=TOKENS))
    batch = {"network": "ethereum", "date": day, "window_days": 7}

    # Before any decision: the queue is the ranked order with suppressible alerts left out.
    ranked = every_item(worker, "/scores", **batch, suppressed="false")
    assert len(ranked) > 20 and {i["model_version"] for i in ranked} == {v1}
    order = [i["alert_id"] for i in ranked]
    assert [i["alert_id"] for i in every_item(worker, "/queue", **batch)] == order

    # Through the topic: six decisions (one decided twice) and the bad ones.
    decided_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    def event(alert_id: str, disposition: str, minutes: int = 0, **extra) -> dict:
        return {"alert_id": alert_id, "network": "ethereum", "processing_date": day, "window_days": 7,
                "disposition": disposition, "analyst": "carol",
                "decided_at": (decided_at + dt.timedelta(minutes=minutes)).isoformat(), **extra}
    topic = broker.topics["dispositions"]
    good = [event(order[0], "true_positive", sar_filed=True, note="funds traced to a mixer"),
            event(order[1], "false_positive"), event(order[2], "inconclusive"),
            event(order[2], "escalated", minutes=30), event(order[3], "false_positive"),
            event(order[4], "true_positive")]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    bad = [(b"k1", b"{not json", "invalid_json"),
           (b"k2", orjson.dumps(event(order[5], "maybe")), "schema_violation"),
           (b"k3", orjson.dumps({**event(order[5], "false_positive"), "decided_at": future}),
            "schema_violation"),
           (b"k4", orjson.dumps({k: v for k, v in event(order[5], "false_positive").items()
                                 if k != "analyst"}), "schema_violation")]
    produce(broker.bootstrap, [(topic, e["alert_id"].encode(), orjson.dumps(e)) for e in good]
            + [(topic, k, v) for k, v, _ in bad])
    letters = read_topic(broker.bootstrap, broker.topics["dlq"], expected=len(bad))
    assert sorted((r.key, dict(r.headers)["dlq.reason"].decode()) for r in letters) == \
        sorted((k, reason) for k, _, reason in bad)
    worker.wait_for("amlscore_decisions_total", len(good))

    # Through the API.
    body = orjson.dumps({"network": "ethereum", "processing_date": day, "window_days": 7,
                         "disposition": "false_positive", "note": "known exchange hot wallet"})
    assert post(worker.port, order[6], body, token=None)[0] == 401
    assert post(worker.port, order[6], body, token="not-a-valid-token-at-all")[0] == 401
    status, answer = post(worker.port, order[6], body)
    assert status == 201 and answer["analyst"] == "alice" and answer["stored"]
    for broken, words in ((b"{", "body"), (orjson.dumps({"network": "ethereum", "processing_date": day,
                                                         "disposition": "guilty"}), "disposition"),
                          (orjson.dumps({"network": "ethereum", "processing_date": day,
                                         "disposition": "false_positive", "analyst": "mallory"}),
                           "analyst"),
                          (orjson.dumps({"network": "ethereum", "processing_date": day,
                                         "disposition": "false_positive", "decided_at": future}),
                           "future")):
        status, answer = post(worker.port, order[7], broken)
        assert status == 400 and words in answer["error"], (broken, answer)
    assert post(worker.port, order[7], b"x" * 20_000)[0] in (400, 413)

    # The queue: decided alerts out, the rest in ranked order; positions of both.
    queue = every_item(worker, "/queue", **batch)
    decided = {order[i] for i in (0, 1, 2, 3, 4, 6)}  # order[5]'s decisions were all refused
    assert [i["alert_id"] for i in queue] == [a for a in order if a not in decided]
    assert [(i["rank_position"], i["queue_position"]) for i in queue[:3]] == [(6, 1), (8, 2), (9, 3)]
    status, page = get(worker, "/queue", **batch, limit=2, offset=len(queue))
    assert status == 200 and page["items"] == [] and page["total"] == len(queue)

    # One alert: its decisions beside its scores, oldest first.
    status, alert = get(worker, f"/alerts/{order[2]}")
    assert status == 200 and alert["scores"]
    assert [d["disposition"] for d in alert["decisions"]] == ["inconclusive", "escalated"]
    status, alert = get(worker, f"/alerts/{order[0]}")
    assert alert["decisions"][0]["sar_filed"] is True and alert["decisions"][0]["analyst"] == "carol"
    metrics = worker.metrics()
    assert metrics['amlscore_decisions_total{disposition="false_positive",source="api"}'] == 1
    assert metrics['amlscore_decisions_total{disposition="true_positive",source="stream"}'] == 2

    assert worker.stop() == 0  # the embedded engine serves one process: read the table now
    stored = query(home, "SELECT alert_id, disposition, analyst, sar_filed, source, note "
                         "FROM amlscore.alert_dispositions ORDER BY alert_id, decided_at")
    assert len(stored) == len(good) + 1  # every decision kept, the superseded one too
    assert {r["source"] for r in stored} == {"stream", "api"}
    assert {(r["alert_id"], r["analyst"]) for r in stored if r["source"] == "api"} == {(order[6], "alice")}
    assert [r["disposition"] for r in stored if r["alert_id"] == order[2]] == ["inconclusive", "escalated"]
