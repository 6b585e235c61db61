"""Champion/challenger: a challenger scores a streamed day into alert_scores_shadow while the
champion's ScoreEvents and rows stay what they were, bit for bit; backfill does the same."""

from __future__ import annotations

import pytest

from tests.stream_harness import (
    LAST,
    cli,
    distinct,
    home_copy,
    produce,
    query,
    read_topic,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration


def test_a_challenger_scores_in_shadow_and_the_champion_is_unchanged(prepared, broker, spawn, tmp_path):
    home = home_copy(prepared, tmp_path / "home")
    v1, v2, day = prepared["v1"], prepared["v2"], LAST.isoformat()
    env = stream_env(home, broker)
    assert "scores in shadow" in cli(env, "shadow", v2).stdout
    records, report = sot_records(broker, prepared["sot"], LAST, clusters=False)
    worker = spawn(env)
    produce(broker.bootstrap, records)
    events = distinct(read_topic(broker.bootstrap, broker.topics["scores"], expected=report.alerts))
    worker.wait_for('amlscore_scored_total{kind="alert"}', report.alerts)
    assert worker.metric('amlscore_shadow_alerts{result="scored"}') > 0
    assert worker.metric('amlscore_shadow_alerts{result="failed"}') == 0
    assert worker.stop() == 0

    backfill = prepared["backfill"]
    assert len(events) == report.alerts and {e["model_version"] for e in events.values()} == {v1}
    for alert_id, event in events.items():
        assert event["score"] == backfill[alert_id]["score"]
        assert event["rank_score"] == backfill[alert_id]["rank_score"]
    champion = query(home, "SELECT alert_id, score, rank_score FROM amlscore.alert_scores FINAL "
                           "WHERE processing_date = {day:Date} AND model_version = {v:String}", day=day, v=v1)
    assert {r["alert_id"]: (r["score"], r["rank_score"]) for r in champion} == \
        {k: (r["score"], r["rank_score"]) for k, r in backfill.items()}
    assert not query(home, "SELECT 1 FROM amlscore.alert_scores WHERE model_version = {v:String} "
                           "LIMIT 1", v=v2)  # never among the champion's rows
    shadow = query(home, "SELECT alert_id, model_version, source FROM amlscore.alert_scores_shadow FINAL "
                         "WHERE processing_date = {day:Date}", day=day)
    assert {r["alert_id"] for r in shadow} == set(events) and {r["model_version"] for r in shadow} == {v2}
    assert {r["source"] for r in shadow} == {"stream"}

    done = cli(env, "backfill", "--start", day, "--end", day, "--force")
    assert "challenger" in done.stdout and "alert_scores_shadow" in done.stdout
    shadow = query(home, "SELECT source, count() AS n FROM amlscore.alert_scores_shadow FINAL "
                         "WHERE processing_date = {day:Date} GROUP BY source", day=day)
    assert shadow == [{"source": "backfill", "n": report.alerts}]
    assert "shadow scoring off" in cli(env, "shadow", "--off").stdout

    cli(env, "shadow", v2)
    assert "the shadow ends" in cli(env, "promote", v2).stdout  # no worker scores v2 twice
    assert not (home / "models" / "SHADOW").exists()
