"""A broker restart mid-stream: Tansu keeps its log on S3 (a moto server on loopback), is killed
while the worker has a backlog in hand, and started again on the same port. The worker rides it
out without a restart of its own; after FINAL, every alert is in ClickHouse exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import boto3
import orjson
import pytest

from amlscore.local_broker import LocalBroker, free_port
from shared.kafka_io import ensure_topics
from tests.backends import KafkaTarget
from tests.stream_harness import (
    LAST,
    WorkerProcess,
    distinct,
    home_copy,
    produce,
    query,
    read_topic,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_ALLOW_HTTP": "true"}


@pytest.fixture
def s3_bucket():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket="tansu")
    yield {**AWS, "AWS_ENDPOINT": endpoint}
    server.stop()


def test_the_worker_rides_out_a_broker_restart_losing_and_duplicating_nothing(prepared, s3_bucket, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    port = free_port()

    def broker() -> LocalBroker:
        return LocalBroker(port=port, storage="s3://tansu/", env=s3_bucket,
                           log_path=tmp_path / "tansu.log").start()

    running = broker()
    target = KafkaTarget(running.bootstrap, "tansu-s3")
    asyncio.run(ensure_topics(target.bootstrap, target.topics.values(), 4))
    records, report = sot_records(target, prepared["sot"], LAST, clusters=False)
    half = len(records) // 2
    env = stream_env(home, target, AMLSCORE_STREAM_SINK="tests.faults:flaky_sink",
                     AMLSCORE_BATCH_SIZE="100", FLAKY_SINK_DELAY_SECONDS="0.05",
                     PYTHONPATH=str(Path(__file__).parents[2]))  # the fault sink, from an empty cwd
    worker = WorkerProcess(env, tmp_path / "worker.log", cwd=tmp_path)
    try:
        worker.start(ready_timeout=90)
        scoring_pid = orjson.loads(worker.get("/live")[1])["scoring_process"]["pid"]
        produce(target.bootstrap, records[:half])
        worker.wait_for("amlscore_scored_total", half // 4)
        running.kill()  # mid-stream: batches in hand, offsets not all committed
        time.sleep(3)
        running = broker()
        produce(target.bootstrap, records[half:])
        worker.wait_for("amlscore_scored_total", len(records), timeout=240)
        live = orjson.loads(worker.get("/live")[1])
        assert worker.process.poll() is None  # the same worker process throughout …
        assert live["scoring_process"] == {"pid": scoring_pid, "restarts": 0}  # … and scoring process
        assert worker.stop() == 0
    finally:
        worker.stop()
    try:
        scores = distinct(read_topic(target.bootstrap, target.topics["scores"], expected=None, idle=5))
        dead = read_topic(target.bootstrap, target.topics["dlq"], idle=2)
    finally:
        running.stop()
    rows = query(home, "SELECT count() AS n, uniqExact(alert_id) AS ids FROM amlscore.alert_scores FINAL "
                       "WHERE source = 'stream'")
    assert rows == [{"n": report.alerts, "ids": report.alerts}]  # 0 lost, 0 duplicate after FINAL
    assert len(scores) + len(dead) == report.alerts and not dead  # every event scored
