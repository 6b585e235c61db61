"""Helpers for stream tests: worker processes, topic reads, poison events, ClickHouse queries."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from amlscore.local_broker import free_port
from batch import replay as rp
from batch.sot_reader import BatchKey, open_source
from shared import kafka_io
from tests.backends import KafkaTarget

PYTHON = sys.executable
FAST_GROUP = {  # short timeouts: Tansu joins take about rebalance_timeout / 2
    "AMLSCORE_SESSION_TIMEOUT": "6", "AMLSCORE_REBALANCE_TIMEOUT": "6",
    "AMLSCORE_HEARTBEAT_INTERVAL": "1", "AMLSCORE_COMMIT_INTERVAL": "0.5",
    "AMLSCORE_MODEL_POLL_INTERVAL": "1", "AMLSCORE_BATCH_WAIT": "0.05",
    "AMLSCORE_RETRY_MAX_DELAY": "1", "AMLSCORE_CLUSTER_MEMBER_WAIT": "2",
    "AMLSCORE_MAX_MESSAGE_BYTES": "65536",
}


def cli(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"amlscore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def query(home: Path, sql: str, **params) -> list[dict]:
    done = subprocess.run([PYTHON, "-m", "tests.chquery", str(home), sql, json.dumps(params)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class WorkerProcess:
    def __init__(self, env: dict, log: Path, cwd: Path | None = None,
                 command: list[str] | None = None) -> None:
        self.port = free_port()
        self.env = {**env, "AMLSCORE_WEB_PORT": str(self.port)}
        self.log = log
        self.cwd = cwd
        self.command = command or [PYTHON, "-c", "from amlscore.cli import main; main()", "worker"]
        self.process: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 60, until: str = "/ready") -> WorkerProcess:
        """Start it and wait until ``until`` answers 200 (``/ready``: the group is joined)."""
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker exited:\n{self.log.read_text()[-3000:]}"
            try:
                if self.get(until)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready:\n{self.log.read_text()[-3000:]}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, by its name with labels as exposed."""
        _, text = self.get("/metrics")
        return {sample.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sample.labels.items()) + "}"
                               if sample.labels else ""): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def wait_for(self, name: str, at_least: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            value = self.metric(name)
            if value >= at_least:
                return value
            time.sleep(0.3)
        raise AssertionError(f"{name} reached {value}, expected {at_least}:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout)


def read_topic(bootstrap: str, topic: str, expected: int | None = None, timeout: float = 60,
               idle: float = 3.0) -> list:
    """Every record of ``topic``; stops at ``expected`` records or after ``idle`` quiet seconds."""
    return asyncio.run(kafka_io.read_topic(bootstrap, topic, expected=expected, timeout=timeout,
                                           idle=idle if expected is None else float("inf")))


def poison_events(valid_event: dict, network: str) -> list[tuple[bytes, bytes, str]]:
    """(key, value, expected reason) for every kind of bad input the worker must dead-letter."""
    def variant(i: int, **changes) -> bytes:
        event = {**valid_event, "alert_id": f"poison-{i}", **changes}
        return orjson.dumps({k: v for k, v in event.items() if v is not ...})

    nan_text = variant(2).replace(b'"volume_usd":', b'"volume_usd":1e999,"_x":', 1)
    return [
        (b"poison-0", b"{not json", "invalid_json"),
        (b"poison-1", variant(1, alert_id=...), "schema_violation"),
        (b"poison-2", nan_text, "non_finite_number"),
        (b"poison-3", variant(3, network="dogecoin-testnet"), "unknown_network"),
        (b"poison-4", variant(4, description="x" * 70_000), "oversize"),  # limit set to 64 KiB
        (b"poison-5", variant(5, window_days="seven"), "schema_violation"),
        (b"poison-6", b"", "empty"),
        (b"poison-7", variant(7, features={"degree_in": "many"}), "schema_violation"),
        (b"poison-8", b"[1, 2, 3]", "schema_violation"),
    ]


START, DAYS = dt.date(2025, 2, 1), 6
LAST = START + dt.timedelta(days=DAYS - 1)


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    return {**env, "AMLSCORE_HOME": str(home)}


def home_copy(prepared, dest: Path) -> Path:
    shutil.copytree(prepared["home"], dest, symlinks=True)  # ClickHouse links metadata → store
    return dest


def stream_env(home: Path, broker: KafkaTarget, **extra: str) -> dict:
    return {**clean_env(home), **FAST_GROUP, **broker.env(), **extra}


def sot_records(broker: KafkaTarget, sot: Path, day: dt.date, features: str = "mixed", clusters: bool = True):
    fs, root = open_source(str(sot))
    report = rp.ReplayReport()
    batches = rp.batches_from_sot(fs, root, [BatchKey("ethereum", day, 7)])
    records = rp.records(batches, broker.topics["alerts"], broker.topics["clusters"], features, report, clusters)
    return list(records), report


def renamed_copies(records: list, copies: int, tag: str) -> list:
    """(topic, key, value) alert records ``copies`` times over, each copy under alert ids of its
    own (``{tag}-{copy}-{alert_id}``, also the key): a backlog larger than the day's alerts."""
    out = []
    for copy in range(copies):
        for topic, _, value in records:
            event = orjson.loads(value)
            event["alert_id"] = f"{tag}-{copy}-{event['alert_id']}"
            out.append((topic, event["alert_id"].encode(), orjson.dumps(event)))
    return out


def produce(bootstrap: str, records) -> list:
    """Publish (topic, key, value) records; return their RecordMetadata in order."""
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                                    max_request_size=2 << 20)
        await producer.start()
        try:
            futures = [await producer.send(t, v, key=k) for t, k, v in records]
            return await asyncio.gather(*futures)
        finally:
            await producer.stop()
    return asyncio.run(run())


def committed_offsets(broker: KafkaTarget) -> dict[int, int]:
    """The group's committed offsets on aml.alerts (read as a non-member: no rebalance)."""
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=broker.group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            found = {}
            for partition in range(4):
                offset = await consumer.committed(TopicPartition(broker.topics["alerts"], partition))
                if offset is not None:
                    found[partition] = offset
            return found
        finally:
            await consumer.stop()
    return asyncio.run(run())


def distinct(records) -> dict[str, dict]:
    return {r.key.decode(): orjson.loads(r.value) for r in records}
