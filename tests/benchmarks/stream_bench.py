"""Stream figures on the local Tansu broker, each next to a limit measured in the same run:
raw aiokafka produce / consume / passthrough, bare Faust agents, the amlscore worker end to end,
event→score latency at a steady rate, and the worker's RSS."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from batch import replay as rp
from batch.sot_reader import discover_batches, open_source
from stream.demo import event_to_score_latencies
from stream.kafka_admin import ensure_topics
from stream.local_broker import LocalBroker, free_port
from tests.stream_harness import FAST_GROUP, WorkerProcess, cli

PY = sys.executable


async def _produce(bootstrap: str, topic: str, records, timestamps: bool = False) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                                linger_ms=5, max_batch_size=1 << 18)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key,
                                               timestamp_ms=int(time.time() * 1000) if timestamps else None))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _consume(bootstrap: str, topic: str, n: int, forward: str | None = None) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000)
    producer = None
    if forward:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5,
                                    max_batch_size=1 << 18)
        await producer.start()
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            records = [r for recs in batch.values() for r in recs]
            if producer:
                await asyncio.gather(*[await producer.send(forward, r.value, key=r.key) for r in records])
            seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        if producer:
            await producer.stop()


def _faust_ceiling(bootstrap: str, topic: str, n: int, mode: str, work: Path) -> float:
    progress = work / f"ceiling-{mode}.txt"
    env = {**os.environ, "BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic, "BENCH_MODE": mode,
           "BENCH_PROGRESS": str(progress), "BENCH_WEB_PORT": str(free_port()),
           "BENCH_GROUP": f"ceiling-{mode}"}
    process = subprocess.Popen([PY, "-m", "faust", "-A", "tests.benchmarks.faust_ceiling", "worker", "-l", "warn"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            lines = progress.read_text().split("\n") if progress.exists() else []
            rows = [tuple(map(float, line.split())) for line in lines if line]
            if rows and rows[-1][0] >= n:
                first = rows[0]
                return (rows[-1][0] - first[0]) / (rows[-1][1] - first[1])
            time.sleep(0.5)
        raise RuntimeError(f"faust {mode} ceiling did not finish")
    finally:
        process.terminate()
        process.wait(30)


def _worker_rate(worker: WorkerProcess, n: int) -> float:
    """Alerts/s from the first batch taken to the last alert scored (batch-wait 0.2 s)."""
    start_count, started = None, None
    while True:
        scored = worker.metric('amlscore_scored_total{kind="alert"}')
        now = time.monotonic()
        if started is None and worker.metric("amlscore_events_in_total") > 0:
            start_count, started = scored, now
        if scored >= n:
            return (n - start_count) / (now - started)
        time.sleep(0.05)


def _rss_mb(pid: int) -> float:
    """Resident memory of the worker: the Faust process plus its scoring process (the tree)."""
    def own(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def children(p: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{p}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(c) for c in text]
        return found

    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            total += own(p)
            stack += children(p)
        except OSError:
            continue
    return total


THROUGHPUT = {"AMLSCORE_BATCH_WAIT": "0.2"}   # fuller micro-batches
LOW_LATENCY = {"AMLSCORE_BATCH_WAIT": os.environ.get("BENCH_LATENCY_BATCH_WAIT", "0.05")}


def run(alerts: int = 100_000, steady_rate: int = 2000, steady_seconds: int = 30,
        rss_events: int = 0) -> dict:
    work = Path(tempfile.mkdtemp(prefix="amlscore-stream-bench-"))
    home, sot = work / "home", work / "sot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update({"AMLSCORE_HOME": str(home), **FAST_GROUP})
    per_day = 20_000
    days = max(3, alerts // per_day)
    cli(env, "synth", "--out", str(sot), "--days", str(days), "--alerts-per-day", str(per_day), "--seed", "3")
    cli(env, "ingest", "--source", str(sot))
    cli(env, "train")
    fs, root = open_source(str(sot))
    report = rp.ReplayReport()
    records = [(k, v) for _, k, v in rp.records(rp.batches_from_sot(fs, root, discover_batches(fs, root)),
                                                 "x", "y", "mixed", report, with_clusters=False)][:alerts]
    n = len(records)
    results: dict = {"alerts": n}
    with LocalBroker(log_path=work / "tansu.log") as broker:
        b = broker.bootstrap
        asyncio.run(ensure_topics(b, ["raw", "raw.out", "ceiling", "ceiling.out", "aml.alerts", "aml.clusters",
                                      "aml.alert-scores", "aml.alerts.dlq"], 4))
        results["raw_produce_msg_s"] = round(n / asyncio.run(_produce(b, "raw", records)))
        results["raw_consume_msg_s"] = round(n / asyncio.run(_consume(b, "raw", n)))
        results["raw_passthrough_msg_s"] = round(n / asyncio.run(_consume(b, "raw", n, forward="raw.out")))
        asyncio.run(_produce(b, "ceiling", records))
        results["faust_consume_only_msg_s"] = round(_faust_ceiling(b, "ceiling", n, "consume", work))
        results["faust_send_per_event_msg_s"] = round(_faust_ceiling(b, "ceiling", n, "send", work))

        asyncio.run(_produce(b, "aml.alerts", records))
        worker = WorkerProcess({**env, **THROUGHPUT, "AMLSCORE_KAFKA_BOOTSTRAP": b}, work / "worker.log").start()
        try:
            results["worker_e2e_alerts_s"] = round(_worker_rate(worker, n))
            results["worker_vs_faust_consume_only"] = round(
                results["worker_e2e_alerts_s"] / results["faust_consume_only_msg_s"], 3)
            results["worker_rss_mb_after_e2e"] = round(_rss_mb(worker.process.pid))
        finally:
            worker.stop()
        # the same home, group and topics: the low-latency worker resumes at the committed end
        worker = WorkerProcess({**env, **LOW_LATENCY, "AMLSCORE_KAFKA_BOOTSTRAP": b}, work / "worker2.log").start()
        try:
            while worker.metric("amlscore_assigned_partitions") < 8:
                time.sleep(0.2)

            # steady rate: producer timestamps in, score-event timestamps out
            steady = records[: steady_rate * steady_seconds]
            fresh = [(k + b"-s", orjson.dumps({**orjson.loads(v), "alert_id": (k + b"-s").decode()}))
                     for k, v in steady]
            started_scores = worker.metric('amlscore_scored_total{kind="alert"}')
            asyncio.run(_paced(b, "aml.alerts", fresh, steady_rate))
            while worker.metric('amlscore_scored_total{kind="alert"}') < started_scores + len(fresh):
                time.sleep(0.1)
            latencies = asyncio.run(event_to_score_latencies(b, {k for k, _ in fresh}))
            results["steady_rate_alerts_s"] = steady_rate
            results["latency_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
            results["latency_p99_ms"] = round(float(np.percentile(latencies, 99)), 1)
            if rss_events:
                total = worker.metric('amlscore_scored_total{kind="alert"}')
                loops = 0
                while total < rss_events:
                    suffix = f"-r{loops}".encode()
                    batch = [(k + suffix, orjson.dumps({**orjson.loads(v), "alert_id": (k + suffix).decode()}))
                             for k, v in records]
                    asyncio.run(_produce(b, "aml.alerts", batch))
                    total += len(batch)
                    loops += 1
                    while worker.metric('amlscore_scored_total{kind="alert"}') < total:
                        time.sleep(0.5)
                results["worker_events_total"] = int(total)
                results["worker_rss_mb_after_all"] = round(_rss_mb(worker.process.pid))
        finally:
            worker.stop()
    shutil.rmtree(work, ignore_errors=True)
    return results


async def _paced(bootstrap: str, topic: str, records, rate: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=0)
    await producer.start()
    try:
        started, pending = time.monotonic(), []
        for i, (key, value) in enumerate(records):
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            pending.append(await producer.send(topic, value, key=key, timestamp_ms=int(time.time() * 1000)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
