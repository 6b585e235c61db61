"""The scoring process's CPU priority (``AMLSCORE_SCORING_NICE``) against the stream's latency, in
one run: a fresh worker per setting, features embedded, warmed up with 5,000 alerts, then a steady
2,000 alerts/s for 20 s; event→ScoreEvent p50/p99, the CPU of the box and of each of the worker's
two processes, and the alerts per micro-batch. The settings alternate (0, the default, 0, the
default, …) so that a box whose speed drifts during the run drifts for both.

``python -m tests.benchmarks.run priority [--rounds N] [--nice 0,5,10]`` (default: 0 and the
default; ``p99_default_vs_nice0`` is the ratio the default buys)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from amlscore.demo import event_to_score_latencies
from batch import replay as rp
from batch.sot_reader import discover_batches, open_source
from shared.kafka_io import ensure_topics
from shared.settings import Settings
from tests.benchmarks.bench_kafka import OPTIONS, broker, fresh, paced
from tests.benchmarks.stream_bench import GROUP_TIMEOUTS, _metrics, _wait_consuming, _wait_scored
from tests.proc_cpu import cpu_window, process_tree
from tests.stream_harness import WorkerProcess, cli

RATE, SECONDS, WARM = 2000, 20, 5000
DEFAULT = Settings.model_fields["scoring_nice"].default


def _one(b: str, env: dict, records: list, work: Path, tag: str, niceness: int) -> dict[str, float]:
    topics = {k: f"{tag}.{k}" for k in ("alerts", "clusters", "scores", "dlq")}
    asyncio.run(ensure_topics(b, topics.values(), 4, options=OPTIONS))
    worker_env = {**env, "AMLSCORE_KAFKA_BOOTSTRAP": b, "AMLSCORE_WORKER_ID": f"bench-{tag}",
                  "AMLSCORE_SCORING_NICE": str(niceness),
                  **{f"AMLSCORE_{k.upper()}_TOPIC": v for k, v in topics.items()}}
    worker = WorkerProcess(worker_env, work / f"worker-{tag}.log").start()
    try:
        _wait_consuming(worker)
        asyncio.run(paced(b, topics["alerts"], fresh(records[:WARM], f"-{tag}-w".encode()), 1000))
        _wait_scored(worker, WARM)
        time.sleep(10)  # the warm-up's parts merged
        faust = worker.process.pid
        scoring = next(p for p in process_tree(faust) if p != faust)
        steady = fresh(records[WARM:WARM + RATE * SECONDS], f"-{tag}".encode())
        before = _metrics(worker)
        with cpu_window(faust) as worker_cpu, cpu_window(scoring) as scoring_cpu:
            asyncio.run(paced(b, topics["alerts"], steady, RATE))
        _wait_scored(worker, WARM + len(steady))
        after = _metrics(worker)
        latencies = asyncio.run(event_to_score_latencies(b, {k for k, _ in steady}, topics["alerts"],
                                                         topics["scores"], options=OPTIONS))
    finally:
        worker.stop()
    key = 'amlscore_batches_total{kind="alert"}'
    scored = 'amlscore_scored_total{kind="alert"}'
    return {"p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "box_cpu_pct": worker_cpu.box_pct,
            "faust_cpu_pct": round(worker_cpu.tree_pct - scoring_cpu.tree_pct, 1),
            "scoring_cpu_pct": scoring_cpu.tree_pct,
            "alerts_per_batch": round((after.get(scored, 0) - before.get(scored, 0))
                                      / max(1.0, after.get(key, 0) - before.get(key, 0)), 1)}


def run(rounds: int = 2, nicenesses: tuple[int, ...] = ()) -> dict:
    work = Path(tempfile.mkdtemp(prefix="amlscore-priority-bench-"))
    home, sot = work / "home", work / "sot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update({"AMLSCORE_HOME": str(home), **GROUP_TIMEOUTS})
    cli(env, "synth", "--out", str(sot), "--days", "3", "--alerts-per-day", "20000", "--seed", "3")
    cli(env, "ingest", "--source", str(sot))
    cli(env, "train")
    fs, root = open_source(str(sot))
    records = [(k, v) for _, k, v in rp.records(rp.batches_from_sot(fs, root, discover_batches(fs, root)),
                                                 "x", "y", "embed", rp.ReplayReport(), with_clusters=False)]
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in (0, DEFAULT, *nicenesses)}
    with broker(None, False, work) as (b, _security):
        for r in range(rounds):
            for niceness in runs:
                runs[niceness].append(_one(b, env, records, work, f"r{r}n{niceness}", niceness))
    out: dict = {"rounds": rounds, "rate": RATE, "default_scoring_nice": DEFAULT}
    for niceness, measured in runs.items():
        for name in measured[0]:
            out[f"{name}_nice{niceness}"] = round(statistics.median(m[name] for m in measured), 1)
        out[f"p99_ms_nice{niceness}_each"] = [round(m["p99_ms"]) for m in measured]
    out["p99_default_vs_nice0"] = round(out[f"p99_ms_nice{DEFAULT}"] / out["p99_ms_nice0"], 2)
    out["p50_default_vs_nice0"] = round(out[f"p50_ms_nice{DEFAULT}"] / out["p50_ms_nice0"], 2)
    return out


def report(results: dict) -> list[str]:
    return [f"{key:45s} {value}" for key, value in results.items()]
