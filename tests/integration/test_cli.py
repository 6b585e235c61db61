"""The `amlscore` console script end to end, each command its own process as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from shared.schemas import AlertEvent, ClusterEvent
from tests.backends import kafka
from tests.stream_harness import read_topic

pytestmark = pytest.mark.integration
AMLSCORE = [sys.executable, "-c", "from amlscore.cli import main; main()"]


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AMLSCORE, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def env(tmp_path) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    return {**clean, "AMLSCORE_HOME": str(tmp_path / "home")}


def test_synth_ingest_train_backfill_export(env, tmp_path):
    sot = tmp_path / "sot"
    done = run(env, "synth", "--out", str(sot), "--days", "8", "--alerts-per-day", "1000", "--seed", "5")
    assert done.returncode == 0, done.stderr

    early = run(env, "backfill")
    assert early.returncode == 1
    assert "run `amlscore ingest` first" in early.stderr or "amlscore train" in early.stderr

    done = run(env, "ingest", "--source", str(sot))
    assert done.returncode == 0, done.stderr
    assert "ingested 8 batches" in done.stdout

    done = run(env, "train", "--holdout-days", "2")
    assert done.returncode == 0, done.stderr
    assert "held-out AUC" in done.stdout and "classifier baseline" in done.stdout
    assert (Path(env["AMLSCORE_HOME"]) / "models" / "PROMOTED").exists()

    done = run(env, "backfill", "--chunk-size", "500")
    assert done.returncode == 0, done.stderr
    assert "scored 8 batches" in done.stdout
    again = run(env, "backfill")
    assert "scored 0 batches" in again.stdout and "skipped 8 complete" in again.stdout

    out = tmp_path / "scores.parquet"
    done = run(env, "export", "--out", str(out), "--start", "2025-01-08", "--end", "2025-01-08")
    assert done.returncode == 0, done.stderr
    frame = pq.read_table(out).to_pandas()
    assert len(frame) > 900 and frame["rank_position"].min() == 1

    # replay the same date from ClickHouse into Kafka: every alert and cluster, once
    with kafka(log_path=tmp_path / "tansu.log") as broker:
        done = run({**env, **broker.env()}, "replay", "--start", "2025-01-08", "--end", "2025-01-08",
                   "--features", "lookup")
        assert done.returncode == 0, done.stderr
        alerts = read_topic(broker.bootstrap, broker.topics["alerts"], idle=2)
        clusters = read_topic(broker.bootstrap, broker.topics["clusters"], idle=2)
    assert f"published {len(alerts)} alerts and {len(clusters)} clusters" in done.stdout
    assert sorted(r.key.decode() for r in alerts) == sorted(frame["alert_id"])
    event = orjson.loads(alerts[0].value)
    assert event["processing_date"] == "2025-01-08" and "features" not in event
    assert AlertEvent.model_validate(event).alert_id == alerts[0].key.decode()
    assert clusters and all(ClusterEvent.model_validate_json(r.value) for r in clusters)


def test_broken_batch_exits_non_zero_with_the_reason(env, tmp_path):
    sot = tmp_path / "sot"
    assert run(env, "synth", "--out", str(sot), "--days", "2", "--alerts-per-day", "100").returncode == 0
    (sot / "ethereum" / "2025-01-01" / "7" / "money_flows.parquet").unlink()
    done = run(env, "ingest", "--source", str(sot))
    assert done.returncode == 1
    assert "REFUSED ethereum/2025-01-01/7" in done.stderr and "money_flows.parquet is missing" in done.stderr
    assert "ingested 1 batches" in done.stdout


def test_missing_model_and_bad_settings_fail_at_startup(env, tmp_path):
    for command in ("backfill", "worker"):  # the worker checks in its scoring process, same message
        done = run({**env, "AMLSCORE_MODELS_DIR": str(tmp_path / "none")}, command)
        assert done.returncode == 1 and "no promoted model" in done.stderr and "amlscore train" in done.stderr
    done = run({**env, "AMLSCORE_CLICKHOUSE_URL": "mysql://x/y"}, "train")
    assert done.returncode == 2 and "configuration error" in done.stderr
    done = run({**env, "AMLSCORE_PREDICT_THREADS": "zero"}, "train")
    assert done.returncode == 2 and "predict_threads" in done.stderr
