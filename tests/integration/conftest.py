"""Fixtures of the stream integration tests: a prepared home (ingested SOT, two trained
versions, v1's backfill), a broker per test, workers stopped at teardown."""

from __future__ import annotations

import asyncio
import re
import signal

import pytest

from shared.kafka_io import ensure_topics
from tests.backends import kafka
from tests.stream_harness import DAYS, LAST, START, WorkerProcess, clean_env, cli, query


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A home with ingested SOT, two trained versions (v1 promoted) and v1's backfill."""
    root = tmp_path_factory.mktemp("stream")
    home, sot = root / "home", root / "sot"
    env = clean_env(home)
    cli(env, "synth", "--out", str(sot), "--start", START.isoformat(), "--days", str(DAYS),
        "--alerts-per-day", "1200", "--seed", "21")
    cli(env, "ingest", "--source", str(sot))
    v2 = re.search(r"model version (\S+)", cli(env, "train", "--holdout-days", "2", "--seed", "9",
                                               "--no-promote").stdout).group(1)
    v1 = re.search(r"model version (\S+)", cli(env, "train", "--holdout-days", "1").stdout).group(1)
    assert v1 != v2
    cli(env, "backfill")
    day = {"day": LAST.isoformat()}
    alerts = query(home, "SELECT alert_id, score, rank_score, explanation, model_version FROM "
                         "amlscore.alert_scores FINAL WHERE processing_date = {day:Date}", **day)
    clusters = query(home, "SELECT cluster_id, score FROM amlscore.cluster_scores FINAL "
                           "WHERE processing_date = {day:Date}", **day)
    return {"home": home, "sot": sot, "v1": v1, "v2": v2,
            "backfill": {r["alert_id"]: r for r in alerts},
            "backfill_clusters": {r["cluster_id"]: r["score"] for r in clusters}}


@pytest.fixture
def spawn(tmp_path):
    """Start workers that are stopped at teardown whatever the test did (no orphans)."""
    started: list[WorkerProcess] = []

    def start(env: dict, name: str = "worker", until: str = "/ready") -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"{name}-{len(started)}.log")
        started.append(worker)
        return worker.start(until=until)

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)


@pytest.fixture
def broker(tmp_path):
    with kafka(log_path=tmp_path / "tansu.log") as target:
        asyncio.run(ensure_topics(target.bootstrap, target.topics.values(), 4))
        yield target
