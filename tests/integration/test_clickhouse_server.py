"""The same store SQL against a ClickHouse server: AMLSCORE_TEST_CLICKHOUSE_URL if set, else a
testcontainers ClickHouse where Docker runs. Skipped with the reason otherwise; the embedded
engine (chdb) runs this SQL in the other integration tests."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from batch.backfill import BackfillConfig, backfill
from batch.ingest import ingest_source
from batch.sot_reader import open_source
from shared.clickhouse import connect, ensure_schema, parse_clickhouse_url
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.score_store import ScoreStore
from shared.scoring import RiskScoring
from tests.backends import docker_unavailable_reason, external
from tests.conftest import SMALL_START

pytestmark = [pytest.mark.integration, pytest.mark.server]


@pytest.fixture(scope="module")
def server_url():
    url = external("AMLSCORE_TEST_CLICKHOUSE_URL")
    if url:
        yield url
        return
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"{reason} and AMLSCORE_TEST_CLICKHOUSE_URL unset; chdb covers the same SQL")
    from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8123)
        yield f"http://{container.username}:{container.password}@{host}:{port}/amlscore"


def test_ingest_and_idempotent_scores_on_a_server(server_url, small_sot, bundle):
    target = parse_clickhouse_url(server_url)
    db = f"srv_{uuid.uuid4().hex[:8]}"
    client = connect(target)
    ensure_schema(client, db)
    try:
        raw, scores = RawStore(client, db), ScoreStore(client, db)
        fs, root = open_source(str(small_sot))
        assert ingest_source(raw, fs, root).ok
        scoring = RiskScoring(bundle)
        end = SMALL_START + dt.timedelta(days=5)
        cfg = BackfillConfig(("ethereum",), SMALL_START, end, force=True)
        first = backfill(raw, scores, scoring, cfg)
        before = scores.alert_scores(["ethereum"], SMALL_START, end, 7)
        backfill(raw, scores, scoring, cfg)
        after = scores.alert_scores(["ethereum"], SMALL_START, end, 7)
        assert len(before) == len(after) == first.alerts
        assert before["score"].to_numpy().tobytes() == after["score"].to_numpy().tobytes()
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")
