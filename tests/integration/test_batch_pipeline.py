"""synth → ingest → train → backfill → export on the embedded ClickHouse engine (chdb)."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch.backfill import BackfillConfig, backfill
from batch.export import export_scores
from batch.ingest import ingest_source
from batch.sot_reader import open_source
from batch.synth import SynthConfig, generate
from batch.train import TrainConfig, train
from shared import model_quality
from shared.clickhouse.migrations import ensure_schema
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.registry_store import RegistryStore
from shared.clickhouse.score_store import ScoreStore
from shared.registry import DirectoryModelRegistry
from shared.scoring import RiskScoring

pytestmark = pytest.mark.integration
START, DAYS = dt.date(2025, 1, 1), 14
END = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def pipeline(chdb_client, tmp_path_factory):
    db = f"p_{uuid.uuid4().hex[:10]}"
    ensure_schema(chdb_client, db)
    sot = tmp_path_factory.mktemp("sot_pipeline")
    generate(SynthConfig(out=sot, start=START, days=DAYS, alerts_per_day=2500, seed=3))
    raw, scores = RawStore(chdb_client, db), ScoreStore(chdb_client, db)
    fs, root = open_source(str(sot))
    ingest_report = ingest_source(raw, fs, root)
    registry = DirectoryModelRegistry(tmp_path_factory.mktemp("models"))
    result = train(raw, registry, TrainConfig(("ethereum",), START, END, holdout_days=3),
                   RegistryStore(chdb_client, db))
    scoring = RiskScoring(registry.load_current())
    cfg = BackfillConfig(("ethereum",), START, END, chunk_size=1000)
    first = backfill(raw, scores, scoring, cfg)
    yield {"client": chdb_client, "db": db, "sot": sot, "raw": raw, "scores": scores,
           "ingest": ingest_report, "train": result, "registry": registry, "scoring": scoring,
           "first": first, "cfg": cfg}
    chdb_client.command(f"DROP DATABASE IF EXISTS {db}")


def _count(p, sql, **params):
    return p["client"].query(sql.format(db=p["db"]), parameters=params).result_rows[0]


def test_every_alert_scored_exactly_once(pipeline):
    p = pipeline
    assert p["ingest"].ok and len(p["ingest"].ingested) == DAYS
    total, distinct = _count(p, "SELECT count(), uniqExact(alert_id) FROM {db}.raw_alerts FINAL")
    assert total == distinct > 30_000
    version = p["scoring"].model_version
    scored, unique_scored = _count(p, "SELECT count(), uniqExact(alert_id) FROM {db}.alert_scores FINAL "
                                      "WHERE model_version = {{v:String}}", v=version)
    assert scored == unique_scored == total == p["first"].alerts
    missing = _count(p, "SELECT count() FROM {db}.raw_alerts FINAL WHERE alert_id NOT IN "
                        "(SELECT alert_id FROM {db}.alert_scores)")[0]
    assert missing == 0


def test_second_backfill_changes_nothing(pipeline):
    p = pipeline
    before = p["scores"].alert_scores(["ethereum"], START, END, 7)
    skipped = backfill(p["raw"], p["scores"], p["scoring"], p["cfg"])
    assert skipped.alerts == 0 and len(skipped.skipped) == DAYS  # resumable: complete batches skipped
    forced = backfill(p["raw"], p["scores"], p["scoring"],
                      BackfillConfig(("ethereum",), START, END, chunk_size=777, force=True))
    assert forced.alerts == p["first"].alerts
    p["client"].command(f"OPTIMIZE TABLE {p['db']}.alert_scores FINAL")
    rows = _count(p, "SELECT count() FROM {db}.alert_scores")[0]  # no FINAL: physically deduplicated
    after = p["scores"].alert_scores(["ethereum"], START, END, 7)
    assert rows == len(before) == len(after)
    for column in ("score", "rank_score"):
        assert before[column].to_numpy().tobytes() == after[column].to_numpy().tobytes()
    assert list(before["explanation"]) == list(after["explanation"])


def test_cluster_scores_do_not_depend_on_how_a_batch_is_chunked(pipeline):
    p = pipeline
    sql = "SELECT cluster_id, score FROM {db}.cluster_scores FINAL ORDER BY cluster_id"
    paged = p["client"].query(sql.format(db=p["db"])).result_rows  # members re-read (chunk 1000)
    backfill(p["raw"], p["scores"], p["scoring"],
             BackfillConfig(("ethereum",), START, END, chunk_size=10**6, force=True))
    whole = p["client"].query(sql.format(db=p["db"])).result_rows  # the batch's own matrix
    assert len(whole) == len(paged) > 1000 and whole == paged


def test_model_beats_97_percent_of_the_oracle_on_held_out_dates(pipeline):
    p = pipeline
    held = pq.read_table(p["train"].report_dir / "holdout_predictions.parquet").to_pandas()
    truth = pd.concat([pq.read_table(f).to_pandas() for f in p["sot"].glob("ethereum/*/7/_truth.parquet")])
    joined = held.merge(truth, on="alert_id", validate="one_to_one")
    assert len(joined) == len(held) > 1000
    oracle = model_quality.roc_auc(joined["label"], joined["p_illicit"])
    model = model_quality.roc_auc(joined["label"], joined["score"])
    assert model == pytest.approx(p["train"].metrics["alert_scorer"]["auc"], abs=1e-6)
    assert model >= 0.97 * oracle, (model, oracle)
    held_dates = set(p["train"].metrics["ranking"]["per_date"][i]["group"].split("/")[1] for i in range(3))
    assert held_dates == {str(END - dt.timedelta(days=d)) for d in range(3)}


def test_report_registry_and_metrics(pipeline):
    p = pipeline
    report = p["train"].report_dir
    for name in ("report.json", "roc.png", "pr.png", "calibration.png", "importance.png"):
        assert (report / name).stat().st_size > 0
    m = p["train"].metrics
    ranking = m["ranking"]["mean"]
    assert {"ranker_ndcg@10", "classifier_baseline_ndcg@10", "ranker_precision@50"} <= set(ranking)
    assert len(m["ranking"]["per_date"]) == 3
    assert 0 < m["alert_scorer"]["brier"] < 0.1
    assert m["cluster_scorer"]["auc"] > 0.75
    rows = RegistryStore(p["client"], p["db"]).rows()
    assert {r["model_name"] for r in rows} == {"alert_scorer", "alert_ranker", "cluster_scorer"}
    assert {r["status"] for r in rows} == {"promoted"}
    meta = p["registry"].load_current().alert_scorer.metadata
    assert meta["training_range"]["holdout_dates"] and meta["data_fingerprint"]


def test_cluster_scores_are_not_a_constant(pipeline):
    p = pipeline
    n, distinct, low, high = _count(
        p, "SELECT count(), uniqExact(score), min(score), max(score) FROM {db}.cluster_scores FINAL")
    clusters = _count(p, "SELECT count() FROM {db}.raw_clusters FINAL")[0]
    assert n == clusters and distinct > 100 and high - low > 0.5


def test_export_has_rank_positions(pipeline, tmp_path):
    p = pipeline
    out = tmp_path / "scores.parquet"
    rows = export_scores(p["scores"], out, ["ethereum"], START, START, 7, p["scoring"].model_version)
    frame = pq.read_table(out).to_pandas()
    assert rows == len(frame) == p["raw"].count("raw_alerts", "ethereum", START, 7)
    assert list(frame["rank_position"]) == list(range(1, len(frame) + 1))
    assert frame["rank_score"].is_monotonic_decreasing
