"""Backfill's pipeline (read ahead, score, write behind), tested with fakes of the stores.

What it must keep: only a few pages alive at once, batches logged complete only after their
last row is written and in order, and a failure in any step raised to the caller.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
import time
import types
import weakref

import numpy as np
import pandas as pd
import pytest

from batch.backfill import AHEAD, BackfillConfig, backfill

DAY = dt.date(2025, 1, 1)


class Raw:
    """A raw store of ``days`` batches of ``n`` alerts each (and ``clusters`` clusters)."""

    def __init__(self, n: int, days: int = 1, clusters: int = 0) -> None:
        self.ids = [f"a{i:05d}" for i in range(n)]
        self.days = days
        self.n_clusters = clusters
        self.pages: list[weakref.ref] = []
        self.most_alive = 0
        self.fail_on_page: int | None = None
        self.member_reads = 0
        self.range_reads: list[tuple[str, dt.date, dt.date]] = []

    def _alive(self) -> int:
        gc.collect()
        return sum(ref() is not None for ref in self.pages)

    def _page(self, ids: list[str], date: dt.date | list[dt.date]) -> pd.DataFrame:
        self.most_alive = max(self.most_alive, self._alive())
        if self.fail_on_page is not None and len(self.pages) == self.fail_on_page:
            raise RuntimeError("the engine went away")
        dates = date if isinstance(date, list) else [date] * len(ids)
        page = pd.DataFrame({"alert_id": ids, "processing_date": pd.to_datetime(dates)})
        self.pages.append(weakref.ref(page))
        return page

    def batches(self, networks, start, end, window):  # noqa: ANN001, ANN201
        return [("ethereum", start + dt.timedelta(days=d), window, len(self.ids))
                for d in range(self.days)]

    def features(self, *_):  # noqa: ANN002, ANN201
        return pd.DataFrame()

    def alerts(self, network, date, window, *, after_id: str, limit: int, columns):  # noqa: ANN001, ANN201
        return self._page([i for i in self.ids if i > after_id][:limit], date)

    def _clusters(self, date: dt.date) -> pd.DataFrame:
        return pd.DataFrame({"cluster_id": [f"c{i}" for i in range(self.n_clusters)],
                             "members": [self.ids[:2]] * self.n_clusters,
                             "processing_date": [date] * self.n_clusters})

    def clusters(self, network, date, window):  # noqa: ANN001, ANN201
        return self._clusters(date)

    def range_frame(self, table, networks, start, end, window, columns=None):  # noqa: ANN001, ANN201
        self.range_reads.append((table, start, end))
        dates = [start + dt.timedelta(days=d) for d in range((end - start).days + 1)]
        if table == "raw_alerts":
            return self._page([i for _ in dates for i in self.ids], [d for d in dates for _ in self.ids])
        if table == "raw_clusters":
            return pd.concat([self._clusters(d) for d in dates], ignore_index=True)
        return pd.DataFrame({"processing_date": []})

    def alerts_by_id(self, network, date, window, ids, columns):  # noqa: ANN001, ANN201
        self.member_reads += 1
        return pd.DataFrame({"alert_id": ids})


class Scoring:
    model_version = "v1"
    scores_clusters = True
    bundle = types.SimpleNamespace(cluster_skipped=None)

    def alert_matrix(self, chunk, features):  # noqa: ANN001, ANN201
        return np.zeros((len(chunk), 4))

    def score_columns(self, chunk, matrix):  # noqa: ANN001, ANN201
        assert len(chunk) == len(matrix)
        return {"alert_id": list(chunk["alert_id"]), "explanation": ["[]"] * len(chunk)}

    def pending_explanations(self, scores, matrix):  # noqa: ANN001, ANN201
        return len(matrix)

    def fill_explanations(self, scores, pending) -> None:  # noqa: ANN001
        scores["explanation"] = ["[{}]"] * pending

    def score_clusters(self, clusters, ids, matrix):  # noqa: ANN001, ANN201
        assert len(ids) == len(matrix)
        return pd.DataFrame({"cluster_id": list(clusters["cluster_id"]), "from": "matrix"})

    def score_clusters_from_alerts(self, clusters, members, features):  # noqa: ANN001, ANN201
        return pd.DataFrame({"cluster_id": list(clusters["cluster_id"]), "from": "members"})


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.fail_on_write: int | None = None
        self.write_seconds = 0.0
        self.completed: dict[tuple, int] = {}
        self.mark_calls: list[int] = []

    def write_alert_scores(self, rows, source, scored_at, table=None) -> None:  # noqa: ANN001
        if self.fail_on_write is not None and len(self.events) == self.fail_on_write:
            raise RuntimeError("disk full")
        time.sleep(self.write_seconds)
        assert set(rows["explanation"]) == {"[{}]"}  # formatted before the write
        self.events.append(("alerts", table, len(rows["alert_id"])))

    def write_cluster_scores(self, rows, source, scored_at) -> None:  # noqa: ANN001
        self.events.append(("clusters", "+".join(sorted(set(rows["from"]))), len(rows["cluster_id"])))

    def mark_complete(self, runs) -> None:  # noqa: ANN001
        self.mark_calls.append(len(runs))
        for network, date, window, version, alerts, clusters in runs:
            self.events.append(("complete", date, alerts, clusters))
            self.completed[(network, date, window, version)] = alerts

    def completed_alerts(self, network, date, window, version) -> int:  # noqa: ANN001
        return self.completed.get((network, date, window, version), 0)


def run(raw: Raw, sink: Sink, chunk: int, days: int = 1, **kwargs):  # noqa: ANN003, ANN201
    cfg = BackfillConfig(("ethereum",), DAY, DAY + dt.timedelta(days=days - 1), 7, chunk)
    return backfill(raw, sink, Scoring(), cfg, **kwargs)


def test_only_a_few_pages_are_alive_at_once():
    raw, sink = Raw(5_000), Sink()
    sink.write_seconds = 0.01  # the slowest step: everything before it would pile up
    report = run(raw, sink, chunk=100)
    assert report.alerts == 5_000 and len(raw.pages) == 51  # a full last page: one empty read
    # one being read, AHEAD waiting to be scored, one being scored, AHEAD waiting to be written
    assert raw.most_alive <= 2 * AHEAD + 2 <= 6


def test_a_batch_is_complete_only_after_its_last_row_in_order():
    raw, sink = Raw(250, days=3, clusters=2), Sink()
    report = run(raw, sink, chunk=100, days=3)
    assert report.scored == [f"ethereum/{DAY + dt.timedelta(days=d)}/7" for d in range(3)]
    assert report.alerts == 750 and report.clusters == 6
    per_day: list[list[tuple]] = [[]]
    for event in sink.events:
        per_day[-1].append(event)
        if event[0] == "complete":
            per_day.append([])
    assert per_day[-1] == []
    for d, events in enumerate(per_day[:-1]):
        assert [e[2] for e in events if e[0] == "alerts"] == [100, 100, 50]
        assert events[-2] == ("clusters", "members", 2)  # three pages: members read back
        assert events[-1] == ("complete", DAY + dt.timedelta(days=d), 250, 2)
    assert raw.member_reads == 3


def test_small_batches_are_read_together_and_written_together_one_insert_per_table_per_page():
    raw, sink = Raw(40, days=5, clusters=3), Sink()
    report = run(raw, sink, chunk=100, days=5)
    assert report.alerts == 200 and report.clusters == 15
    # two days fit a page of 100; each group is one read per table
    alert_reads = [(s, e) for t, s, e in raw.range_reads if t == "raw_alerts"]
    assert [(e - s).days + 1 for s, e in alert_reads] == [2, 2, 1]
    assert [e[2] for e in sink.events if e[0] == "alerts"] == [80, 80, 40]
    # each day's clusters scored from the page's matrix, the page's written in one insert
    assert [e for e in sink.events if e[0] == "clusters"] == [("clusters", "matrix", n) for n in (6, 6, 3)]
    assert raw.member_reads == 0
    completes = [e for e in sink.events if e[0] == "complete"]
    assert completes == [("complete", DAY + dt.timedelta(days=d), 40, 3) for d in range(5)]
    assert sink.mark_calls == [2, 2, 1]  # a page's batches logged complete in one write
    first_complete = sink.events.index(completes[0])  # after its group's alerts and clusters
    assert sink.events[:first_complete] == [("alerts", None, 80), ("clusters", "matrix", 6)]


def test_a_second_run_skips_what_is_complete_and_force_rescores():
    raw, sink = Raw(120), Sink()
    run(raw, sink, chunk=50)
    again = run(raw, sink, chunk=50)
    assert again.skipped == [f"ethereum/{DAY}/7"] and again.alerts == 0
    cfg = BackfillConfig(("ethereum",), DAY, DAY, 7, 50, force=True)
    assert backfill(raw, sink, Scoring(), cfg).alerts == 120


@pytest.mark.parametrize(("step", "message"), [("read", "engine went away"), ("write", "disk full")])
def test_a_failure_in_any_step_reaches_the_caller_and_nothing_is_logged_complete(step, message):
    raw, sink = Raw(2_000), Sink()
    if step == "read":
        raw.fail_on_page = 3
    else:
        sink.fail_on_write = 2
    with pytest.raises(RuntimeError, match=message):
        run(raw, sink, chunk=100)
    assert not sink.completed
    assert not [t for t in threading.enumerate() if t.name.startswith("backfill-")]
