"""The batch CLI on input as real producers and operators bring it, each command its own process
started in an empty directory: what is valid is accepted, and every failure a user can cause is
one line on stderr, a non-zero exit, no traceback and nothing written."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.parquet as pq
import pytest

from tests.sot_helpers import batch_dirs, clone, read, rewrite

pytestmark = pytest.mark.integration
AMLSCORE = [sys.executable, "-c", "from amlscore.cli import main; main()"]


def run(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*AMLSCORE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def user(tmp_path) -> tuple[dict, Path]:
    """A new user's shell: no AMLSCORE_ settings but a home, an empty working directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return {**clean, "AMLSCORE_HOME": str(tmp_path / "home")}, cwd


def refused(done: subprocess.CompletedProcess, *words: str) -> None:
    """Non-zero, one line on stderr naming the problem, no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and all(w.lower() in done.stderr.lower() for w in words), done.stderr


def nothing_ingested(env: dict, cwd: Path) -> None:
    done = run(env, cwd, "export", "--out", "scores.parquet")
    assert done.returncode == 1 and "holds no alerts yet" in done.stderr, done.stderr


def _pandas_way(batch: Path, name: str, columns: list[str]) -> None:
    """What a pandas producer writes for an empty table: object columns, 0 rows (type null)."""
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    frame.to_parquet(batch / name)
    meta = orjson.loads((batch / "META.json").read_bytes())
    meta["sha256"][name] = hashlib.sha256((batch / name).read_bytes()).hexdigest()
    meta["counts"][name.removesuffix(".parquet")] = 0
    (batch / "META.json").write_bytes(orjson.dumps(meta))


def test_a_range_without_clusters_written_the_pandas_way_runs_end_to_end(user, small_sot, tmp_path):
    env, cwd = user
    sot = clone(small_sot, tmp_path / "sot")
    for batch in batch_dirs(sot):
        _pandas_way(batch, "clusters.parquet", ["cluster_id", "related_alert_ids", "total_alerts"])
        _pandas_way(batch, "money_flows.parquet", ["from_address", "to_address", "amount_usd_sum"])
        alerts = read(batch, "alerts.parquet")
        nulls = pd.Series([None] * alerts.num_rows, dtype=object)
        rewrite(batch, "alerts.parquet", alerts.drop_columns(["description"]).append_column(
            "description", pa.Array.from_pandas(nulls)))  # all None → Arrow type null

    done = run(env, cwd, "ingest", "--source", str(sot))
    assert done.returncode == 0, done.stderr
    done = run(env, cwd, "train", "--holdout-days", "2")
    assert done.returncode == 0, done.stderr
    assert "cluster_scorer not trained: no clusters" in done.stdout
    assert "rank_score     from the" in done.stdout
    done = run(env, cwd, "backfill")
    assert done.returncode == 0, done.stderr
    assert "0 clusters" in done.stdout and "clusters left unscored" in done.stdout
    out = cwd / "scores.parquet"
    done = run(env, cwd, "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).num_rows == sum(read(b, "alerts.parquet").num_rows for b in batch_dirs(sot))
    listing = run(env, cwd, "models")
    assert listing.returncode == 0 and "not scored" in listing.stdout, listing.stderr


def test_failures_a_user_can_cause_are_one_line_and_write_nothing(user, small_sot, tmp_path):
    env, cwd = user
    assert small_sot  # a real source for the cases that need one

    refused(run({**env, "AMLSCORE_CLICKHOUSE_URL": "chdb:///"}, cwd, "export", "--out", "x"), "directory of its own")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused(run({**env, "AMLSCORE_CLICKHOUSE_URL": f"chdb://{busy}"}, cwd, "export", "--out", "x"), "not ClickHouse's")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    refused(run(env, cwd, "ingest", "--source", str(empty)), "nothing to ingest")
    for args in (["ingest", "--source", str(small_sot)], ["replay", "--source", str(small_sot)],
                 ["train"], ["backfill"], ["export", "--out", "x.parquet"]):
        done = run(env, cwd, *args, "--start", "2025-01-05", "--end", "2025-01-01")
        refused(done, "--start 2025-01-05 is after --end 2025-01-01")
        assert done.returncode == 2
    refused(run(env, cwd, "replay", "--rate", "-5"), "--rate")
    refused(run(env, cwd, "dlq", "--reason", "bogus"), "unknown reason bogus", "sink_rejected")

    (cwd / "afile").write_text("")
    refused(run(env, cwd, "synth", "--out", "afile/sot", "--days", "1"), "afile")
    refused(run({**env, "AMLSCORE_CLICKHOUSE_URL": "http://127.0.0.1:1"}, cwd, "export", "--out", "x"),
            "cannot reach ClickHouse at http://127.0.0.1:1")
    refused(run({**env, "AMLSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, cwd, "replay", "--source",
                str(small_sot)), "cannot reach Kafka at 127.0.0.1:1")
    refused(run({**env, "AMLSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, cwd, "dlq"),
            "cannot reach Kafka at 127.0.0.1:1")
    nothing_ingested(env, cwd)

    holder = subprocess.Popen(  # as a running worker does, hold the embedded engine
        [sys.executable, "-c", "import time; from shared.context import Context; from shared.settings "
         "import load_settings; held = Context(load_settings()); held.client; print('held', flush=True); time.sleep(60)"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(run(env, cwd, "export", "--out", "x.parquet"), "another process holds it")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("defect", ["window_folder", "meta_network", "absent_checksum", "labels",
                                    "empty_address", "infinite", "network_name"])
def test_a_defective_source_is_refused_whole(user, small_sot, tmp_path, defect):
    env, cwd = user
    sot = clone(small_sot, tmp_path / "sot")
    first = batch_dirs(sot)[0]
    expect = {"window_folder": "not a window folder", "meta_network": "META.json says network",
              "absent_checksum": "lists a checksum for extra.parquet",
              "labels": "unknown risk_level", "empty_address": "rows have no address",
              "infinite": "infinite values", "network_name": "network folder name"}[defect]
    if defect == "window_folder":
        (first.parent / "seven").mkdir()
    elif defect == "meta_network":
        meta = orjson.loads((first / "META.json").read_bytes())
        (first / "META.json").write_bytes(orjson.dumps({**meta, "network": "bitcoin"}))
    elif defect == "absent_checksum":
        meta = orjson.loads((first / "META.json").read_bytes())
        meta["sha256"]["extra.parquet"] = "0" * 64
        (first / "META.json").write_bytes(orjson.dumps(meta))
    elif defect == "labels":
        labels = next((sot / "address-labels").iterdir())
        table = pq.read_table(labels).to_pandas()
        table.loc[0, "risk_level"] = "severe"
        table.to_parquet(labels)
    elif defect in ("empty_address", "infinite"):
        alerts = read(first, "alerts.parquet").to_pandas()
        if defect == "empty_address":
            alerts.loc[3, "address"] = ""
        else:
            alerts.loc[3, "volume_usd"] = float("inf")
        rewrite(first, "alerts.parquet", pa.Table.from_pandas(alerts, preserve_index=False))
    else:
        (sot / "Ethereum Main").mkdir()
    done = run(env, cwd, "ingest", "--source", str(sot))
    refused(done, expect)
    if defect == "labels":  # labels are checked before any batch is written
        nothing_ingested(env, cwd)
    else:
        assert "REFUSED" in done.stderr


def test_models_promote_and_rollback_keep_one_promoted_version(user, small_sot):
    env, cwd = user
    assert run(env, cwd, "ingest", "--source", str(small_sot)).returncode == 0
    versions = []
    for seed in ("1", "2"):
        done = run(env, cwd, "train", "--holdout-days", "2", "--seed", seed)
        assert done.returncode == 0, done.stderr
        versions.append(done.stdout.split()[2])
    listing = run(env, cwd, "models").stdout
    assert f"* {versions[1]}" in listing and f"  {versions[0]}" in listing

    assert run(env, cwd, "promote", versions[0]).returncode == 0
    assert f"* {versions[0]}" in run(env, cwd, "models").stdout
    assert _promoted_rows(env, cwd) == {versions[0]}
    done = run(env, cwd, "rollback")
    assert done.returncode == 0 and versions[1] in done.stdout
    assert f"* {versions[1]}" in run(env, cwd, "models").stdout
    assert _promoted_rows(env, cwd) == {versions[1]}
    refused(run(env, cwd, "promote", "no-such-version"), "no model version 'no-such-version'")

    holder = subprocess.Popen(  # a worker on the embedded engine: promoting must still work
        [sys.executable, "-c", "import time; from shared.context import Context; from shared.settings "
         "import load_settings; held = Context(load_settings()); held.client; print('held', flush=True); time.sleep(60)"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = run(env, cwd, "promote", versions[0])
        assert done.returncode == 0 and "model_registry not updated yet" in done.stderr
        assert f"* {versions[0]}" in run(env, cwd, "models").stdout  # the pointer workers follow
    finally:
        holder.kill()
        holder.wait()
    assert run(env, cwd, "promote", versions[0]).returncode == 0
    assert _promoted_rows(env, cwd) == {versions[0]}


def _promoted_rows(env: dict, cwd: Path) -> set[str]:
    versions = _query(env, cwd, "SELECT groupUniqArray(model_version) FROM amlscore.model_registry "
                                "FINAL WHERE status = 'promoted'", cast=list)
    return set(versions)


def test_re_ingesting_a_batch_with_empty_files_leaves_none_of_its_old_rows(user, small_sot, tmp_path):
    env, cwd = user
    sot = clone(small_sot, tmp_path / "sot")
    first = batch_dirs(sot)[0]
    assert run(env, cwd, "ingest", "--source", str(sot)).returncode == 0
    day = first.parent.name
    counts = "SELECT count() FROM amlscore.{} WHERE processing_date = {{day:String}}"
    assert all(_query(env, cwd, counts.format(t), day=day) > 0 for t in ("raw_alerts", "raw_clusters"))
    for name in ("alerts.parquet", "clusters.parquet"):
        rewrite(first, name, read(first, name).slice(0, 0))
    done = run(env, cwd, "ingest", "--source", str(sot), "--start", day, "--end", day)
    assert done.returncode == 0, done.stderr
    assert [_query(env, cwd, counts.format(t), day=day) for t in ("raw_alerts", "raw_clusters")] == [0, 0]
    assert _query(env, cwd, counts.format("raw_features"), day=day) == read(first, "features.parquet").num_rows


def _query(env: dict, cwd: Path, sql: str, cast=int, **params: str):  # noqa: ANN001, ANN202
    """One value from the embedded ClickHouse, read by a process of its own (as a user would)."""
    code = ("import sys, json; from shared.context import Context; from shared.settings import load_settings; "
            "print(Context(load_settings()).client.query(sys.argv[1], parameters=json.loads(sys.argv[2]))"
            ".result_rows[0][0])")
    done = subprocess.run([sys.executable, "-c", code, sql, orjson.dumps(params).decode()], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return cast(eval(done.stdout))  # noqa: S307 - a number or list ClickHouse returned


def test_drift_of_a_shifted_day_flags_that_feature_alone(user, small_sot, tmp_path):
    env, cwd = user
    sot = clone(small_sot, tmp_path / "sot")
    last = batch_dirs(sot)[-1]
    alerts = read(last, "alerts.parquet")
    shifted = pa.compute.multiply(alerts.column("volume_usd"), 20.0)
    rewrite(last, "alerts.parquet", alerts.set_column(alerts.schema.get_field_index("volume_usd"),
                                                      "volume_usd", shifted))
    day = last.parent.name
    assert run(env, cwd, "ingest", "--source", str(sot)).returncode == 0
    before = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    assert run(env, cwd, "train", "--holdout-days", "1", "--end", before).returncode == 0
    done = run(env, cwd, "drift", "--start", day, "--end", day)
    assert done.returncode == 0, done.stderr
    report_path = Path(done.stdout.strip().splitlines()[-1].removeprefix("report: "))
    features = orjson.loads(report_path.read_bytes())["features"]
    assert features["volume_usd"]["psi"] > 0.25 and features["volume_usd"]["status"] == "act"
    others = {k: v["psi"] for k, v in features.items() if k != "volume_usd" and v["psi"] is not None}
    assert others and max(others.values()) < 0.1, sorted(others.items(), key=lambda kv: -kv[1])[:3]
    assert "1 features act" in done.stdout and (report_path.parent / "drift.png").exists()


def test_compare_shows_a_challenger_trained_on_more_data(user, tmp_path):
    env, cwd = user
    sot = tmp_path / "sot"
    assert run(env, cwd, "synth", "--out", str(sot), "--days", "10", "--alerts-per-day", "800",
               "--seed", "3").returncode == 0
    assert run(env, cwd, "ingest", "--source", str(sot)).returncode == 0
    champion = run(env, cwd, "train", "--end", "2025-01-03", "--holdout-days", "1")
    challenger = run(env, cwd, "train", "--end", "2025-01-09", "--holdout-days", "1", "--no-promote")
    assert champion.returncode == 0 and challenger.returncode == 0, champion.stderr + challenger.stderr
    v1, v2 = champion.stdout.split()[2], challenger.stdout.split()[2]
    refused(run(env, cwd, "compare", "--start", "2025-01-10", "--end", "2025-01-10"), "no challenger")
    refused(run(env, cwd, "shadow", v1), "is the promoted version")
    assert run(env, cwd, "shadow", v2).returncode == 0
    done = run(env, cwd, "compare", "--start", "2025-01-10", "--end", "2025-01-10")
    assert done.returncode == 0, done.stderr
    report = orjson.loads(Path(done.stdout.strip().splitlines()[-1].removeprefix("report: ")).read_bytes())
    assert (report["champion"], report["challenger"]) == (v1, v2) and report["labelled"] > 100
    metrics = report["metrics"]
    assert metrics["challenger"]["pr_auc"] > metrics["champion"]["pr_auc"]
    assert 0 < report["rank_agreement"]["top50_overlap_mean"] <= 1
    assert report["score_shift"]["mean_abs"] > 0 and "compare.png" == report["plot"]
