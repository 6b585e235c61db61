"""The stream path on a real broker (Tansu) and the embedded ClickHouse engine.

Workers run as processes of their own, exactly as `amlscore worker` runs; the embedded engine
allows one process per data directory, so ClickHouse is read after a worker stops (through
tests.chquery) and each test works on a copy of a prepared home.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time

import orjson
import pytest

from shared.kafka_io import ensure_topics
from shared.registry import PROMOTED_FILE, DirectoryModelRegistry
from tests.backends import kafka
from tests.stream_harness import (
    LAST,
    cli,
    committed_offsets,
    distinct,
    home_copy,
    poison_events,
    produce,
    query,
    read_topic,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration


def test_day_with_poison_is_scored_exactly_once_and_matches_backfill(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker))
    records, report = sot_records(broker, prepared["sot"], LAST)
    valid = next(orjson.loads(v) for t, _, v in records if t == broker.topics["alerts"])
    poison = [p for _ in range(7) for p in poison_events(valid, "ethereum")]
    poison = [(f"{k.decode()}-{i}".encode(), v, reason) for i, (k, v, reason) in enumerate(poison)]
    assert 0.04 < len(poison) / report.alerts < 0.07
    produce(broker.bootstrap, records + [(broker.topics["alerts"], k, v) for k, v, _ in poison])

    scores = read_topic(broker.bootstrap, broker.topics["scores"], expected=report.alerts, timeout=120)
    dead = read_topic(broker.bootstrap, broker.topics["dlq"], expected=len(poison), timeout=60)
    worker.wait_for("amlscore_scored_total", report.alerts + report.clusters)
    assert worker.metric("amlscore_events_in_total") == report.alerts + report.clusters + len(poison)
    assert worker.metric("amlscore_dead_lettered_total") == len(poison)
    assert worker.stop() == 0

    # every poison event is in the DLQ, unchanged, with its reason and origin
    expected = {k: (v, reason) for k, v, reason in poison}
    assert len(dead) == len(poison)
    for record in dead:
        headers = dict(record.headers)
        value, reason = expected[record.key]
        assert record.value == value and headers["dlq.reason"].decode() == reason
        assert headers["dlq.source_topic"] == broker.topics["alerts"].encode()
        assert int(headers["dlq.offset"]) >= 0 and int(headers["dlq.partition"]) in range(4)
        assert headers["dlq.error"]

    # every valid alert scored exactly once, and bit for bit what the backfill gave
    events = distinct(scores)
    assert len(events) == len(scores) == report.alerts
    backfill = prepared["backfill"]
    assert set(events) == set(backfill)
    for alert_id, event in events.items():
        reference = backfill[alert_id]
        assert event["model_version"] == reference["model_version"] == prepared["v1"]
        assert event["score"] == reference["score"] and event["rank_score"] == reference["rank_score"]
        assert orjson.dumps(event["explanation"]).decode() == reference["explanation"]
    rows = query(home, "SELECT count() AS n, uniqExact(alert_id) AS u, countIf(source = 'stream') AS s "
                       "FROM amlscore.alert_scores FINAL WHERE processing_date = {day:Date}", day=str(LAST))[0]
    assert rows == {"n": report.alerts, "u": report.alerts, "s": report.alerts}
    clusters = query(home, "SELECT cluster_id, score, source FROM amlscore.cluster_scores FINAL "
                           "WHERE processing_date = {day:Date}", day=str(LAST))
    assert len(clusters) == report.clusters == len(prepared["backfill_clusters"])
    for row in clusters:
        assert row["source"] == "stream" and row["score"] == prepared["backfill_clusters"][row["cluster_id"]]


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    days = [LAST - dt.timedelta(days=1), LAST]
    records = [r for day in days for r in sot_records(broker, prepared["sot"], day, clusters=False)[0]]
    ids = {k.decode() for _, k, _ in records}
    produce(broker.bootstrap, records)
    slow = stream_env(home, broker, AMLSCORE_STREAM_SINK="tests.faults:flaky_sink", AMLSCORE_BATCH_SIZE="100",
                FLAKY_SINK_FAIL_SECONDS="0", FLAKY_SINK_DELAY_SECONDS="0.15")
    first = spawn(slow)
    first.wait_for("amlscore_scored_total", len(ids) // 4)
    first.stop(signal.SIGKILL)
    partial = distinct(read_topic(broker.bootstrap, broker.topics["scores"], idle=2))
    assert 0 < len(partial) < len(ids)

    second = spawn(stream_env(home, broker))
    deadline = time.monotonic() + 120
    while len(distinct(read_topic(broker.bootstrap, broker.topics["scores"], idle=1))) < len(ids):
        assert time.monotonic() < deadline, "alerts missing after restart"
    assert second.stop() == 0
    rows = query(home, "SELECT count() AS n, uniqExact(alert_id) AS u FROM amlscore.alert_scores FINAL "
                       "WHERE source = 'stream'")[0]
    assert rows == {"n": len(ids), "u": len(ids)}


def test_sink_outage_loses_nothing_and_commits_nothing_unwritten(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    written_log = tmp_path / "written.txt"
    records, report = sot_records(broker, prepared["sot"], LAST, clusters=False)
    metadata = produce(broker.bootstrap, records)
    at = {(m.partition, m.offset): k.decode() for m, (_, k, _) in zip(metadata, records, strict=True)}
    env = stream_env(home, broker, AMLSCORE_STREAM_SINK="tests.faults:flaky_sink", AMLSCORE_BATCH_SIZE="200",
               FLAKY_SINK_FAIL_SECONDS="8", FLAKY_SINK_LOG=str(written_log), AMLSCORE_STALL_TIMEOUT="3")
    worker = spawn(env, until="/live")  # not /ready: that waits for the store, down from the start
    worker.wait_for("amlscore_sink_failures_total", 3)
    checks, live_codes = 0, set()
    while True:
        live_codes.add(worker.get("/live")[0])
        committed = committed_offsets(broker)
        written = set(written_log.read_text().split()) if written_log.exists() else set()
        for partition, offset in committed.items():
            unwritten = [at[(partition, o)] for o in range(max(offset, 0))
                         if at[(partition, o)] not in written]
            assert not unwritten, f"partition {partition} committed to {offset} past unwritten rows"
        checks += 1
        if len(written) >= report.alerts:
            break
        time.sleep(0.2)
    assert checks > 5
    assert 503 in live_codes  # liveness reflects progress: the stuck batch showed during the outage
    deadline = time.monotonic() + 30
    while sum(committed_offsets(broker).values()) < report.alerts:  # the reading is real:
        assert time.monotonic() < deadline, "offsets never committed"      # commits do arrive
        time.sleep(0.3)
    status, body = worker.get("/live")
    assert status == 200, body
    assert worker.metric("amlscore_sink_failures_total") >= 3
    assert worker.stop() == 0
    rows = query(home, "SELECT count() AS n FROM amlscore.alert_scores FINAL WHERE source = 'stream'")
    assert rows[0]["n"] == report.alerts


def test_new_model_mid_stream_is_used_for_later_batches(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    worker = spawn(stream_env(home, broker))
    first, first_report = sot_records(broker, prepared["sot"], LAST - dt.timedelta(days=1), clusters=False)
    produce(broker.bootstrap, first)
    worker.wait_for("amlscore_scored_total", first_report.alerts)

    DirectoryModelRegistry(home / "models").promote(prepared["v2"])
    deadline = time.monotonic() + 30
    while orjson.loads(worker.get("/ready")[1])["model_version"] != prepared["v2"]:
        assert time.monotonic() < deadline, "new model not picked up"
        time.sleep(0.3)
    second, second_report = sot_records(broker, prepared["sot"], LAST, clusters=False)
    produce(broker.bootstrap, second)
    worker.wait_for("amlscore_scored_total", first_report.alerts + second_report.alerts)

    # a version that does not load is refused; the worker keeps scoring with the one it has
    broken = home / "models" / "broken-version"
    broken.mkdir()
    (broken / "alert_scorer.json").write_text("{}")
    (home / "models" / PROMOTED_FILE).write_text('{"model_version": "broken-version"}')
    worker.wait_for("amlscore_model_reloads_total", 2)  # loaded v2, refused the broken one
    ready = orjson.loads(worker.get("/ready")[1])
    assert ready["model_version"] == prepared["v2"] and ready["model_reload_failures"] >= 1
    third, _ = sot_records(broker, prepared["sot"], LAST - dt.timedelta(days=2), clusters=False)
    produce(broker.bootstrap, third[:100])
    total = first_report.alerts + second_report.alerts + 100
    events = read_topic(broker.bootstrap, broker.topics["scores"], expected=total, timeout=60)
    worker.stop()
    versions: dict[str, str] = {}
    for record in events:
        versions[record.key.decode()] = orjson.loads(record.value)["model_version"]
    assert len(versions) == total
    assert {versions[k.decode()] for _, k, _ in first} == {prepared["v1"]}
    assert {versions[k.decode()] for _, k, _ in second} == {prepared["v2"]}
    assert {versions[k.decode()] for _, k, _ in third[:100]} == {prepared["v2"]}


def test_two_workers_share_four_partitions_and_score_each_alert_once(prepared, broker, spawn, tmp_path):
    # The embedded engine serves one process per directory, so each worker has its own copy;
    # with a ClickHouse server both would write to one database.
    homes = [home_copy(prepared, tmp_path / f"home{i}") for i in (0, 1)]
    workers = [spawn(stream_env(h, broker)) for h in homes]
    for w in workers:
        w.wait_for("amlscore_assigned_partitions", 2, timeout=60)
    deadline = time.monotonic() + 60
    consumed = 3 * 4  # alerts, clusters and dispositions, four partitions each
    while sum(w.metric("amlscore_assigned_partitions") for w in workers) != consumed:
        assert time.monotonic() < deadline, "partitions not split between the workers"
        time.sleep(0.5)
    records = [r for day in (LAST - dt.timedelta(days=1), LAST)
               for r in sot_records(broker, prepared["sot"], day, clusters=False)[0]]
    produce(broker.bootstrap, records)
    events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=len(records), timeout=120))
    assert len(events) == len(records)
    assert all(w.metric("amlscore_scored_total") > 0 for w in workers)
    for w in workers:
        assert w.stop() == 0
    per_worker = [{r["alert_id"] for r in query(h, "SELECT alert_id FROM amlscore.alert_scores FINAL "
                                                   "WHERE source = 'stream'")} for h in homes]
    assert not per_worker[0] & per_worker[1]
    assert per_worker[0] | per_worker[1] == {k.decode() for _, k, _ in records}


def test_dead_letters_can_be_read_and_redriven_after_a_fix(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    records, _ = sot_records(broker, prepared["sot"], LAST, clusters=False)
    foreign = [(t, k, orjson.dumps({**orjson.loads(v), "network": "polygon"})) for t, k, v in records[:30]]
    broken = [(t, k + b"-x", orjson.dumps({**orjson.loads(v), "volume_usd": "lots"})) for t, k, v in records[30:35]]
    first = spawn(stream_env(home, broker))
    produce(broker.bootstrap, foreign + broken)
    first.wait_for("amlscore_dead_lettered_total", 35)
    first.stop()
    summary = cli(stream_env(home, broker), "dlq", "--show", "1").stdout
    assert "35 dead letters" in summary and "30  unknown_network" in summary and "5  schema_violation" in summary
    chosen = cli(stream_env(home, broker), "dlq", "--reason", "unknown_network").stdout
    assert "30 with reason unknown_network" in chosen and "schema_violation" not in chosen
    # the fix: this deployment now accepts polygon; re-drive exactly those dead letters
    second = spawn(stream_env(home, broker, AMLSCORE_NETWORKS='["ethereum", "polygon"]'))
    done = cli(stream_env(home, broker), "dlq", "--reason", "unknown_network", "--redrive")
    assert "re-drove 30 dead letters" in done.stdout
    second.wait_for('amlscore_scored_total{kind="alert"}', 30)
    events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=30))
    assert set(events) == {k.decode() for _, k, _ in foreign}
    assert {e["network"] for e in events.values()} == {"polygon"}


def test_sigterm_stops_the_worker_even_when_the_broker_is_gone(prepared, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    with kafka(log_path=tmp_path / "tansu.log") as target:
        if target.kind != "tansu":
            pytest.skip("needs a broker this test can take away")
        asyncio.run(ensure_topics(target.bootstrap, target.topics.values(), 4))
        worker = spawn(stream_env(home, target, AMLSCORE_SHUTDOWN_TIMEOUT="3"))
        worker.wait_for("amlscore_assigned_partitions", 1)
    started = time.monotonic()  # the broker is stopped now
    code = worker.stop(signal.SIGTERM, timeout=30)
    assert time.monotonic() - started < 20 and code is not None
