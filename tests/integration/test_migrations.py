"""Upgrades keep the data: a database made with release 0.1.0's schema (kept as a fixture) is
refused by commands told not to migrate (exit 2, one line), brought up to date by
`amlscore migrate`, and then ingest, train, backfill, export and the worker all work on it —
with the worker running as it would under a ClickHouse user without DDL rights
(AMLSCORE_AUTO_MIGRATE=false)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from shared.clickhouse.ddl import MERGE_MEMORY, MERGE_SELECTION, PART_CLEANUP
from shared.clickhouse.migrations import SCHEMA_VERSION
from tests.stream_harness import (
    LAST,
    PYTHON,
    WorkerProcess,
    clean_env,
    cli,
    produce,
    query,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).parents[1] / "fixtures" / "schema_release_0_1_0.sql"
OLD_ROW = ("INSERT INTO amlscore.alert_scores (network, processing_date, window_days, alert_id, address, "
           "model_version, score, rank_score, risk_level, explanation, source) VALUES ('ethereum', "
           "'2024-12-01', 7, 'scored-by-0.1.0', 'addr', 'v0', 0.5, 0.5, 'high', '[]', 'backfill')")


def _make_old_database(home: Path) -> None:
    script = (
        "import sys; from shared.clickhouse import connect, parse_clickhouse_url\n"
        "c = connect(parse_clickhouse_url(f'chdb://{sys.argv[1]}/chdb', 'amlscore'))\n"
        "for s in open(sys.argv[2]).read().replace('OLD_DB', 'amlscore').split(';'):\n"
        "    s.strip() and c.command(s)\n"
        "c.command(sys.argv[3])\n")
    subprocess.run([PYTHON, "-c", script, str(home), str(FIXTURE), OLD_ROW], check=True,
                   cwd=Path(__file__).parents[2], timeout=120)


def _amlscore(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_release_0_1_0_database_is_migrated_and_every_command_works_on_it(prepared, broker, tmp_path):
    home = tmp_path / "home"
    _make_old_database(home)
    shutil.copytree(prepared["home"] / "models", home / "models")  # the worker finds a model
    env = clean_env(home)
    strict = {**env, "AMLSCORE_AUTO_MIGRATE": "false"}

    for command in (["export", "--out", str(tmp_path / "x.parquet")], ["worker"]):
        refused = _amlscore({**stream_env(home, broker), "AMLSCORE_AUTO_MIGRATE": "false"}, *command)
        assert refused.returncode == 2, refused.stderr
        line, = refused.stderr.strip().splitlines()
        assert "schema version 1" in line and "amlscore migrate" in line

    plan = _amlscore(env, "migrate", "--dry-run")
    assert plan.returncode == 0 and f"schema 1 → {SCHEMA_VERSION}" in plan.stdout
    assert "ADD INDEX IF NOT EXISTS alert_id_bloom" in plan.stdout and "ADD COLUMN IF NOT EXISTS qc_sample" in plan.stdout
    assert "alert_lookup" not in plan.stdout  # retired before this database ever had it
    assert "CREATE OR REPLACE VIEW amlscore.alert_rankings" in plan.stdout
    done = _amlscore(env, "migrate")
    assert done.returncode == 0 and f"schema 1 → {SCHEMA_VERSION}" in done.stdout, done.stderr
    assert f"up to date (schema {SCHEMA_VERSION})" in _amlscore(env, "migrate").stdout
    assert query(home, "SELECT name FROM system.data_skipping_indices WHERE database = 'amlscore' "
                       "AND table = 'alert_scores'") == [{"name": "alert_id_bloom"}]
    # a row scored before the QC sample existed reads back as not sampled, in the view too
    assert query(home, "SELECT qc_sample FROM amlscore.alert_rankings") == [{"qc_sample": False}]

    cli(strict, "ingest", "--source", str(prepared["sot"]))
    cli(strict, "train", "--holdout-days", "1")
    cli(strict, "backfill")
    out = tmp_path / "scores.parquet"
    cli(strict, "export", "--out", str(out), "--start", LAST.isoformat(), "--end", LAST.isoformat())
    assert len(pq.read_table(out)) > 1000

    worker = WorkerProcess(stream_env(home, broker, AMLSCORE_AUTO_MIGRATE="false"),
                           tmp_path / "worker.log", cwd=tmp_path)
    try:
        worker.start()
        records, report = sot_records(broker, prepared["sot"], LAST, clusters=False)
        produce(broker.bootstrap, records)
        worker.wait_for("amlscore_scored_total", report.alerts)
        status, body = worker.get(f"/alerts/{records[0][1].decode()}")
        assert status == 200 and '"source":"stream"' in body.replace(" ", "")
    finally:
        assert worker.stop() == 0
    old = query(home, "SELECT count() AS n FROM amlscore.alert_scores FINAL WHERE alert_id = 'scored-by-0.1.0'")
    assert old == [{"n": 1}]  # the data of the old release is still there


def test_a_schema_4_database_drops_the_lookup_view_keeps_its_table_and_finds_alerts_by_index(
        chdb_client, database):
    """Schema 5 retires alert_lookup_mv (a part per write): the view goes, the table and its
    rows stay, and an alert scored before is found through the new index."""
    from shared.clickhouse.migrations import migrate
    from shared.clickhouse.score_reads import ScoreReads, read_limits

    db = database
    chdb_client.command(f"ALTER TABLE {db}.alert_scores DROP INDEX alert_id_bloom")
    chdb_client.command(f"CREATE TABLE {db}.alert_lookup (alert_id String, network LowCardinality(String), "
                        "processing_date Date, window_days UInt16, model_version LowCardinality(String)) "
                        "ENGINE = ReplacingMergeTree ORDER BY (alert_id, network, window_days, processing_date, model_version)")
    chdb_client.command(f"CREATE MATERIALIZED VIEW {db}.alert_lookup_mv TO {db}.alert_lookup AS SELECT "
                        f"alert_id, network, processing_date, window_days, model_version FROM {db}.alert_scores")
    chdb_client.command(OLD_ROW.replace("amlscore.", f"{db}."))
    chdb_client.command(f"DELETE FROM {db}.schema_version WHERE version >= 5")
    before, after, statements = migrate(chdb_client, db)
    assert (before, after) == (4, SCHEMA_VERSION)
    assert f"DROP VIEW IF EXISTS {db}.alert_lookup_mv" in statements
    tables = {r[0] for r in chdb_client.query(f"SELECT name FROM system.tables WHERE database = '{db}'").result_rows}
    assert "alert_lookup_mv" not in tables and "alert_lookup" in tables
    assert chdb_client.query(f"SELECT alert_id FROM {db}.alert_lookup").result_rows == [("scored-by-0.1.0",)]
    reads = ScoreReads(chdb_client, db, read_limits(5, 256 << 20))
    assert [r["model_version"] for r in reads.alert_history("scored-by-0.1.0")] == ["v0"]
    chdb_client.command(OLD_ROW.replace("amlscore.", f"{db}.").replace("scored-by-0.1.0", "scored-by-5"))
    assert chdb_client.query(f"SELECT count() FROM {db}.alert_lookup").result_rows == [(1,)]  # not written


@pytest.mark.parametrize("version, settings", [(6, PART_CLEANUP), (7, MERGE_MEMORY), (8, MERGE_SELECTION)],
                         ids=["6-part-cleanup", "7-merge-memory", "8-merge-selection"])
def test_an_older_database_gets_the_table_settings_and_keeps_its_rows(chdb_client, database, version,
                                                                       settings):
    """Schema 6: replaced parts are deleted every second or two (the stream's inserts stalled on
    the default's 30 s heaps). Schema 7: merges go column by column in small blocks (a merge of
    the stream's parts held up to 150 MB). Schema 8: parts up to 10× each other's size are merged
    (fewer rewrites of each row). An older table gets the settings; its rows stay."""
    from shared.clickhouse.migrations import migrate, plan

    db = database

    def table_settings(table: str) -> str:
        return chdb_client.query(f"SELECT engine_full FROM system.tables WHERE database = '{db}' "
                                 f"AND name = '{table}'").result_rows[0][0]
    assert all(f"{k} = {v}" in table_settings("alert_scores") for k, v in settings.items())
    chdb_client.command(f"ALTER TABLE {db}.alert_scores RESET SETTING {', '.join(settings)}")
    chdb_client.command(OLD_ROW.replace("amlscore.", f"{db}."))
    chdb_client.command(f"DELETE FROM {db}.schema_version WHERE version >= {version}")
    assert not any(k in table_settings("alert_scores") for k in settings)
    before, after, statements = migrate(chdb_client, db)
    assert (before, after) == (version - 1, SCHEMA_VERSION)
    assert [s for s in statements if "MODIFY SETTING" in s] == [
        f"ALTER TABLE {db}.alert_scores MODIFY SETTING "
        + ", ".join(f"{k} = {v}" for k, v in settings.items())]
    assert all(f"{k} = {v}" in table_settings("alert_scores") for k, v in settings.items())
    assert chdb_client.query(f"SELECT alert_id FROM {db}.alert_scores").result_rows == [("scored-by-0.1.0",)]
    assert plan(chdb_client, db) == []
    assert chdb_client.query(f"SELECT alert_id FROM {db}.alert_scores").result_rows == [("scored-by-0.1.0",)]
