"""Does the dispositions agent cost alert scoring anything? Alert p99 (producer timestamp →
ScoreEvent) at a steady 2,000 alerts/s on one worker, three times in one run: without decisions,
with 50 decisions/s on ``aml.dispositions`` beside them, and without again (the run's own
spread). The limit: p99 with decisions at most ``MAX_RATIO`` × the slower of the two runs without.

    python -m tests.benchmarks.run dispositions
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import orjson

from amlscore.demo import event_to_score_latencies
from amlscore.local_broker import LocalBroker
from batch import replay as rp
from batch.sot_reader import discover_batches, open_source
from shared.kafka_io import ensure_topics
from tests.benchmarks.bench_kafka import fresh, paced, produce
from tests.benchmarks.stream_bench import _wait_scored
from tests.stream_harness import WorkerProcess, cli

RATE, DECISIONS_PER_S, SECONDS = 2000, 50, 20
MAX_RATIO = 1.2  # beyond the run-to-run spread of p99 on this 2-core box


def decisions(alert_ids: list[bytes], per_second: int, seconds: int) -> list[tuple[bytes, bytes]]:
    decided_at = dt.datetime.now(dt.UTC).isoformat()
    kinds = ("true_positive", "false_positive", "inconclusive", "escalated")
    return [(alert_id, orjson.dumps({
        "alert_id": alert_id.decode(), "network": "ethereum", "processing_date": "2025-01-01",
        "window_days": 7, "disposition": kinds[i % 4], "analyst": f"analyst-{i % 5}",
        "decided_at": decided_at, "sar_filed": i % 7 == 0}))
        for i, alert_id in enumerate(alert_ids[:per_second * seconds])]


async def _steady(bootstrap: str, alerts_topic: str, alerts, dispositions_topic: str | None,
                  decided) -> None:
    jobs = [paced(bootstrap, alerts_topic, alerts, RATE)]
    if dispositions_topic is not None:
        jobs.append(paced(bootstrap, dispositions_topic, decided, DECISIONS_PER_S))
    await asyncio.gather(*jobs)


def measure(bootstrap: str, worker: WorkerProcess, topics: dict[str, str], records, done: int) -> dict:
    """The three steady runs on a worker that has scored ``done`` alerts so far."""
    out: dict = {}
    stored = 0
    for name, with_decisions in (("without", False), ("with", True), ("without_again", False)):
        steady = fresh(records[: RATE * SECONDS], f"-d{name}".encode())
        decided = decisions([k for k, _ in steady], DECISIONS_PER_S, SECONDS) if with_decisions else []
        asyncio.run(_steady(bootstrap, topics["alerts"], steady,
                            topics["dispositions"] if with_decisions else None, decided))
        done += len(steady)
        _wait_scored(worker, done)
        if with_decisions:
            stored += len(decided)
            worker.wait_for("amlscore_decisions_total", stored)
        latencies = asyncio.run(event_to_score_latencies(bootstrap, {k for k, _ in steady},
                                                         topics["alerts"], topics["scores"]))
        out[f"latency_p99_ms_{name}_decisions"] = round(float(np.percentile(latencies, 99)), 1)
    out["decisions_stored"] = int(worker.metric("amlscore_decisions_total"))
    reference = max(out["latency_p99_ms_without_decisions"], out["latency_p99_ms_without_again_decisions"])
    out["latency_p99_with_vs_without_decisions"] = round(out["latency_p99_ms_with_decisions"] / reference, 3)
    return out


def run(alerts: int = 40_000) -> dict:
    work = Path(tempfile.mkdtemp(prefix="amlscore-decisions-bench-"))
    sot = work / "sot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update({"AMLSCORE_HOME": str(work / "home"), "AMLSCORE_SESSION_TIMEOUT": "6",
                "AMLSCORE_REBALANCE_TIMEOUT": "6", "AMLSCORE_HEARTBEAT_INTERVAL": "1"})
    cli(env, "synth", "--out", str(sot), "--days", "3", "--alerts-per-day", str(max(alerts // 3, 14_000)))
    cli(env, "ingest", "--source", str(sot))
    cli(env, "train")
    fs, root = open_source(str(sot))
    records = [(k, v) for _, k, v in rp.records(rp.batches_from_sot(fs, root, discover_batches(fs, root)),
                                                 "x", "y", "mixed", rp.ReplayReport(), with_clusters=False)]
    topics = {k: f"bench.{k}" for k in ("alerts", "clusters", "scores", "dlq", "dispositions")}
    try:
        with LocalBroker(log_path=work / "tansu.log") as broker:
            asyncio.run(ensure_topics(broker.bootstrap, topics.values(), 4))
            worker_env = {**env, "AMLSCORE_KAFKA_BOOTSTRAP": broker.bootstrap, "AMLSCORE_WORKER_ID": "bench",
                          **{f"AMLSCORE_{k.upper()}_TOPIC": v for k, v in topics.items()}}
            worker = WorkerProcess(worker_env, work / "worker.log").start()
            try:
                # Warm up (model, caches, the group) before anything is measured.
                warm = fresh(records[:5000], b"-warm")
                asyncio.run(produce(broker.bootstrap, topics["alerts"], warm))
                _wait_scored(worker, len(warm))
                return {"rate_alerts_s": RATE, "decisions_s": DECISIONS_PER_S,
                        **measure(broker.bootstrap, worker, topics, records, len(warm))}
            finally:
                worker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict) -> list[str]:
    lines = []
    for key, value in results.items():
        line = f"{key:<55} {value:>10}"
        if key.endswith("latency_p99_with_vs_without_decisions"):
            line += f"   limit <= {MAX_RATIO}   {'ok' if value <= MAX_RATIO else 'MISSED'}"
        lines.append(line)
    return lines
