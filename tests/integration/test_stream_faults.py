"""What no event, stall or crash may do to the worker, on a real broker and the embedded engine:
poison a day with dates ClickHouse cannot hold and clusters whose members never come; kill the
scoring process mid-stream; hang either lane; start the worker as a newcomer would."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import orjson
import pytest

from shared.registry import PROMOTED_FILE
from tests.stream_harness import (
    LAST,
    WorkerProcess,
    cli,
    distinct,
    home_copy,
    produce,
    query,
    read_topic,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration


def _poisoned_day(broker, prepared):  # noqa: ANN001, ANN202
    """The last day, plus alerts dated outside ClickHouse's Date range and clusters whose
    member alerts never arrive."""
    records, report = sot_records(broker, prepared["sot"], LAST)
    valid = next(orjson.loads(v) for t, _, v in records if t == broker.topics["alerts"])
    cluster = next(orjson.loads(v) for t, _, v in records if t == broker.topics["clusters"])
    bad_dates = [(f"date-{d}-{i}", {**valid, "alert_id": f"date-{d}-{i}", "processing_date": d})
                 for d in ("2200-01-01", "1900-01-01") for i in range(5)]
    orphans = [(f"orphan-{i}", {**cluster, "cluster_id": f"orphan-{i}", "primary_alert_id": f"ghost-{i}",
                                "related_alert_ids": [f"ghost-{i}-a", f"ghost-{i}-b"]}) for i in range(4)]
    poison = [(broker.topics["alerts"], k.encode(), orjson.dumps(v)) for k, v in bad_dates]
    poison += [(broker.topics["clusters"], k.encode(), orjson.dumps(v)) for k, v in orphans]
    # interleaved with the valid events, not after them
    mixed = records[:len(records) // 2] + poison + records[len(records) // 2:]
    expected = {k: "schema_violation" for k, _ in bad_dates} | {k: "members_missing" for k, _ in orphans}
    return mixed, report, expected


def test_dates_clickhouse_cannot_hold_and_memberless_clusters_are_dead_lettered_alone(
        prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker, AMLSCORE_SHUTDOWN_TIMEOUT="10"))
    records, report, expected = _poisoned_day(broker, prepared)
    produce(broker.bootstrap, records)

    scores = read_topic(broker.bootstrap, broker.topics["scores"], expected=report.alerts, timeout=120)
    dead = read_topic(broker.bootstrap, broker.topics["dlq"], expected=len(expected), timeout=60)
    worker.wait_for("amlscore_scored_total", report.alerts + report.clusters)
    assert {r.key.decode(): dict(r.headers)["dlq.reason"].decode() for r in dead} == expected
    assert len(distinct(scores)) == report.alerts
    assert worker.get("/live")[0] == 200 and worker.get("/ready")[0] == 200

    started = time.monotonic()
    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - started < 10
    rows = query(home, "SELECT count() AS n, min(processing_date) AS lo, max(processing_date) AS hi "
                       "FROM amlscore.alert_scores FINAL WHERE source = 'stream'")[0]
    assert rows == {"n": report.alerts, "lo": LAST.isoformat(), "hi": LAST.isoformat()}
    clusters = query(home, "SELECT count() AS n FROM amlscore.cluster_scores FINAL WHERE source = 'stream'")
    assert clusters[0]["n"] == report.clusters


def test_a_killed_scoring_process_is_replaced_and_nothing_is_lost(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    records = [r for day in (LAST - dt.timedelta(days=1), LAST)
               for r in sot_records(broker, prepared["sot"], day, clusters=False)[0]]
    ids = {k.decode() for _, k, _ in records}
    worker = spawn(stream_env(home, broker, AMLSCORE_STREAM_SINK="tests.faults:flaky_sink",
                              AMLSCORE_BATCH_SIZE="100", FLAKY_SINK_DELAY_SECONDS="0.1"))
    child = orjson.loads(worker.get("/live")[1])["scoring_process"]["pid"]
    produce(broker.bootstrap, records)
    worker.wait_for("amlscore_scored_total", len(ids) // 5)
    os.kill(child, signal.SIGKILL)
    worker.wait_for("amlscore_scoring_process_restarts", 1, timeout=60)
    events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=len(ids), timeout=180))
    assert set(events) == ids
    live = orjson.loads(worker.get("/live")[1])
    assert live["scoring_process"]["pid"] != child and live["scoring_process"]["restarts"] == 1
    assert worker.stop() == 0
    rows = query(home, "SELECT count() AS n, uniqExact(alert_id) AS u FROM amlscore.alert_scores FINAL "
                       "WHERE source = 'stream'")[0]
    assert rows == {"n": len(ids), "u": len(ids)}


def test_a_scoring_process_that_cannot_be_restarted_ends_the_worker_non_zero(
        prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker))
    child = orjson.loads(worker.get("/live")[1])["scoring_process"]["pid"]
    (home / "models" / PROMOTED_FILE).unlink()  # a new scoring process cannot load a model now
    os.kill(child, signal.SIGKILL)
    code = worker.process.wait(60)
    assert code == 70, worker.log.read_text()[-2000:]
    assert "could not be restarted" in worker.log.read_text()


@pytest.mark.parametrize("lane", ["alert", "cluster"])
def test_a_stuck_lane_turns_live_503_and_sigterm_still_ends_the_worker(prepared, broker, spawn, tmp_path,
                                                                       lane):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker, AMLSCORE_STREAM_SINK="tests.faults:flaky_sink",
                              FLAKY_SINK_HANG=lane, AMLSCORE_STALL_TIMEOUT="2",
                              AMLSCORE_SHUTDOWN_TIMEOUT="4"))
    records, _ = sot_records(broker, prepared["sot"], LAST)
    topic = broker.topics["alerts" if lane == "alert" else "clusters"]
    produce(broker.bootstrap, [r for r in records if r[0] == topic][:50])
    deadline = time.monotonic() + 30
    while (status := worker.get("/live"))[0] != 503:
        assert time.monotonic() < deadline, f"/live stayed {status}"
        time.sleep(0.3)
    assert f"{lane} lane" in status[1]
    started = time.monotonic()
    worker.stop(signal.SIGTERM, timeout=30)
    assert time.monotonic() - started < 10


def test_the_worker_starts_in_an_empty_directory_with_documented_settings_only(prepared, broker, tmp_path):
    """As a newcomer runs it: nothing pre-created but the models it is pointed at."""
    models = tmp_path / "models"
    shutil.copytree(prepared["home"] / "models", models)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env |= {"AMLSCORE_MODELS_DIR": str(models), **broker.env()}
    console_script = str(Path(sys.executable).parent / "amlscore")
    worker = WorkerProcess(env, tmp_path / "worker.log", cwd=cwd, command=[console_script, "worker"])
    try:
        worker.start()
        assert (cwd / "amlscore-data" / "chdb").is_dir()  # created, where the README says
        records, report = sot_records(broker, prepared["sot"], LAST, features="embed", clusters=False)
        produce(broker.bootstrap, records[:200])
        events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=200, timeout=60))
        assert len(events) == 200
        for alert_id, event in events.items():
            assert event["score"] == prepared["backfill"][alert_id]["score"]
    finally:
        assert worker.stop() == 0


def test_envelopes_from_replay_are_scored_alert_by_alert_like_the_backfill(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker))
    done = cli(stream_env(home, broker), "replay", "--source", str(prepared["sot"]), "--start",
               LAST.isoformat(), "--end", LAST.isoformat(), "--no-clusters", "--envelope", "20")  # 20 fit the 64 KiB test limit
    n = len(prepared["backfill"])
    assert f"published {n} alerts" in done.stdout and f"({-(-n // 20)} messages)" in done.stdout
    events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=n, timeout=120))
    assert set(events) == set(prepared["backfill"])
    for alert_id, event in events.items():
        reference = prepared["backfill"][alert_id]
        assert event["score"] == reference["score"] and event["rank_score"] == reference["rank_score"]
        assert orjson.dumps(event["explanation"]).decode() == reference["explanation"]
    assert worker.stop() == 0
