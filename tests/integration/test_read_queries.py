"""The read API's queries read only what they answer, on the real engine: EXPLAIN shows the
granules a page of one batch and one alert's history read stay the same as other dates grow;
a read's work runs at the lower OS priority its limits ask for."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from shared.clickhouse.score_reads import ScoreReads, history_query, page_query, read_limits

pytestmark = pytest.mark.integration
DAY0 = dt.date(2025, 1, 1)


def _add_days(client, db: str, first: int, days: int, per_day: int = 20_000) -> None:
    for day in range(first, first + days):
        client.command(
            f"INSERT INTO {db}.alert_scores (network, processing_date, window_days, alert_id, address, "
            f"model_version, score, rank_score, risk_level, explanation, scored_at, source) SELECT "
            f"'ethereum', toDate('{DAY0}') + {day}, 7, concat('a-', toString({day}), '-', toString(number)), "
            f"concat('addr-', toString(number)), 'v1', number / {per_day}, (number * 7919 % {per_day}) / {per_day}, "
            f"'low', '[]', now64(3), 'backfill' FROM numbers({per_day})")


def _granules(client, sql: str, params: dict) -> tuple[int, int]:
    """(granules read, granules in the table) of alert_scores, as EXPLAIN says."""
    plan = [r[0] for r in client.query(f"EXPLAIN indexes = 1 {sql}", parameters=params).result_rows]
    start = next(i for i, line in enumerate(plan) if "ReadFromMergeTree" in line and "alert_scores" in line)
    steps = [(int(m.group(1)), int(m.group(2))) for line in plan[start:]
             if (m := re.search(r"Granules: (\d+)/(\d+)", line))]
    return steps[-1][0], steps[0][1]  # read after the last index step; in all, before the first


def test_pages_and_alert_history_read_a_bounded_number_of_granules(chdb_client, database):
    _add_days(chdb_client, database, 0, 3)
    page = page_query(database, "alert_id, score", "alert_scores", "rank_score DESC, alert_id",
                      "ethereum", DAY0 + dt.timedelta(days=1), 7, "v1", 50, 100)
    history = history_query(database, "a-1-77")
    before = [_granules(chdb_client, *page), _granules(chdb_client, *history)]
    _add_days(chdb_client, database, 3, 30)
    after = [_granules(chdb_client, *page), _granules(chdb_client, *history)]
    # one day of 20,000 rows spans 3 granules of 8,192 (4 when a merge cuts it unevenly);
    # one alert sits in 1 (2 across a boundary) — however many other dates the table holds
    for (page_read, _), (history_read, _) in (before, after):
        assert page_read <= 4 and history_read <= 2, (before, after)
    assert after[0][1] >= 8 * before[0][1], "the table did grow"

    reads = ScoreReads(chdb_client, database, read_limits(5, 256 << 20))
    rows, total = reads.ranked_alerts("ethereum", DAY0 + dt.timedelta(days=1), 7, "v1", 3, 0)
    assert total == 20_000 and [r["rank_position"] for r in rows] == [1, 2, 3]
    expected = chdb_client.query(
        f"SELECT alert_id FROM {database}.alert_rankings WHERE processing_date = {{d:Date}} "
        "ORDER BY rank_position LIMIT 3", parameters={"d": DAY0 + dt.timedelta(days=1)}).result_rows
    assert [r["alert_id"] for r in rows] == [r[0] for r in expected]  # the view's order, exactly
    assert [r["alert_id"] for r in reads.alert_history("a-1-77")] == ["a-1-77"]
    assert reads.ranked_alerts("ethereum", DAY0, 7, "v1", 10, 1_000_000) == ([], 20_000)


def _thread_cpu_by_niceness() -> dict[int, int]:
    """CPU ticks used so far by this process's threads, summed per niceness (Linux /proc)."""
    ticks: dict[int, int] = {}
    for stat in Path(f"/proc/{os.getpid()}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        ticks[int(fields[16])] = ticks.get(int(fields[16]), 0) + int(fields[11]) + int(fields[12])
    return ticks


def _until_timeout(client, sql: str, limits: dict) -> None:  # noqa: ANN001
    with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
        client.query(sql, settings=limits)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads thread niceness from /proc")
def test_a_read_runs_in_the_engine_at_the_niceness_it_asks_for(chdb_client):
    # The engine runs a query on threads of its own: the caller's niceness does not reach them,
    # the read limits' os_thread_priority does (for the query's time only: sampled meanwhile).
    sql = "SELECT count() FROM numbers(2000000000) WHERE sipHash64(number) % 7 = 1"
    for niceness in (0, 10):
        limits = read_limits(2, 256 << 20, niceness)
        query = threading.Thread(target=_until_timeout, args=(chdb_client, sql, limits))
        before = _thread_cpu_by_niceness()
        query.start()
        time.sleep(1.0)
        after = _thread_cpu_by_niceness()
        query.join()  # ended by its own time limit
        used = {n: after.get(n, 0) - before.get(n, 0) for n in after}
        assert max(used, key=used.get) == niceness, used
