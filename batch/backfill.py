"""Score a date range from ClickHouse into the score tables, batch by batch.

Per batch: alerts are read in ``alert_id`` pages of ``chunk_size``, scored with the shared
RiskScoring, and written (idempotent: same alert + model version replaces). Clusters are scored
from their member alerts. Only when all of that is written is the batch logged complete for the
model version, so an interrupted backfill resumes at the first incomplete batch.

Reading, scoring and writing overlap, across pages and across batches, in three threads split
by what holds Python's lock: a reader runs ahead (what is complete, the features, the pages and
their feature matrices, the clusters and their scores), the caller's thread runs the models
(XGBoost predicts and computes TreeSHAP without the lock), a writer formats the explanations,
writes (one insert per table per page, however many batches it holds), and logs each batch
complete after its last row, in order. So the Python work of one page overlaps the model work
of another. At most a couple of pages wait between two steps
(bounded queues), and a page's rows are released once written. Give the sink a ClickHouse client
other than the raw store's, or the two serialise on it.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from shared.clickhouse.raw_store import RawStore
from shared.cluster_features import member_table
from shared.columns import day_numbers
from shared.features import ALERT_SCORING_COLUMNS
from shared.scoring import PendingExplanations, RiskScoring, ScoreColumns
from shared.sink import SHADOW_TABLE, CompletedRun, ScoreRuns, ScoreSink

AHEAD = 2  # pieces of work a step may run ahead of the next (memory: a few pages at most)


@dataclass(frozen=True)
class BackfillConfig:
    networks: tuple[str, ...]
    start: dt.date
    end: dt.date
    window_days: int = 7
    chunk_size: int = 50_000
    force: bool = False


@dataclass
class BackfillReport:
    model_version: str
    scored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    alerts: int = 0
    clusters: int = 0
    seconds: float = 0.0
    clusters_skipped: str | None = None  # the model has no cluster_scorer: why

    @property
    def alerts_per_second(self) -> float:
        return self.alerts / self.seconds if self.seconds else 0.0


Batch = tuple[str, dt.date, int]


@dataclass
class Work:
    """What the reader hands on: a page of alerts with its feature matrix (or none), then the
    clusters of batches whose alerts are all in it or before it (each a call that scores them,
    made by the writer, the least busy step), and those batches' ends."""

    alerts: pd.DataFrame | None = None
    features: pd.DataFrame | None = None
    matrix: np.ndarray | None = None
    clusters: list[Callable[[], pd.DataFrame]] = field(default_factory=list)
    done: list[BatchDone] = field(default_factory=list)


@dataclass
class Scored:
    """What the writer gets: the page's scores (explanations still to format), the challenger's,
    then the reader's clusters and batch ends, written in that order."""

    scores: ScoreColumns | None
    explanations: PendingExplanations | None
    challenger: ScoreColumns | None
    clusters: list[Callable[[], pd.DataFrame]]
    done: list[BatchDone]


@dataclass
class BatchDone:
    batch: Batch
    alerts: int
    clusters: int
    skipped: bool = False


class _Stop:
    """End of a stream of work (or its failure, carried to the caller)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _run_ahead(produce: Callable[[Callable[[Any], None]], None], depth: int,
               name: str) -> tuple[Iterator[Any], Callable[[], None]]:
    """``produce(put)`` in a thread of its own, its items taken in order from the iterator;
    an error in it is raised by the iterator. The second value stops it early."""
    items: queue.Queue = queue.Queue(depth)
    stopped = threading.Event()

    def put(item: Any) -> None:
        while not stopped.is_set():
            try:
                items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def run() -> None:
        try:
            produce(put)
            put(_Stop())
        except _Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - carried to the caller
            try:
                put(_Stop(exc))
            except _Cancelled:
                pass

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def iterate() -> Iterator[Any]:
        while True:
            item = items.get()
            if isinstance(item, _Stop):
                thread.join()
                if item.error is not None:
                    raise item.error
                return
            yield item

    def stop() -> None:
        stopped.set()
        thread.join()
    return iterate(), stop


class _Cancelled(Exception):
    pass


def _rows_per_day(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """Row positions per processing date, keyed by day number (a range read holds one network
    and window)."""
    if not len(frame):
        return {}
    days = day_numbers(frame["processing_date"]).astype(np.int64)
    return pd.Series(days).groupby(days, sort=False).indices


def _day(date: dt.date) -> int:
    return int(np.datetime64(date, "D").astype(np.int64))


def _read_group(raw: RawStore, scoring: RiskScoring, group: list[tuple[Batch, int]],
                put: Callable[[Any], None]) -> None:
    """Consecutive batches of one network, small enough together for one page: one range read
    per table (a query costs about as much as 2,500 rows, so 200 one-day reads cost twice what
    a few range reads do), one matrix, then each batch's clusters from its slice of it."""
    (network, first, window), _ = group[0]
    last = group[-1][0][1]
    alerts = raw.range_frame("raw_alerts", [network], first, last, window, columns=ALERT_SCORING_COLUMNS)
    features = raw.range_frame("raw_features", [network], first, last, window)
    matrix = scoring.alert_matrix(alerts, features)
    work = Work(alerts, features, matrix)
    clusters = raw.range_frame("raw_clusters", [network], first, last, window) if scoring.scores_clusters else None
    alert_rows = _rows_per_day(alerts)
    cluster_rows = _rows_per_day(clusters) if clusters is not None else {}
    alert_ids = alerts["alert_id"].astype(str).to_numpy() if cluster_rows else None
    for batch, _ in group:
        day = _day(batch[1])
        rows, mine = alert_rows.get(day, np.empty(0, dtype=np.int64)), cluster_rows.get(day)
        if mine is not None:
            work.clusters.append(partial(scoring.score_clusters, clusters.iloc[mine],
                                         pd.Index(alert_ids[rows]), matrix[rows]))
        work.done.append(BatchDone(batch, len(rows), 0 if mine is None else len(mine)))
    put(work)


def _read_paged(raw: RawStore, scoring: RiskScoring, batch: Batch, chunk_size: int,
                put: Callable[[Any], None]) -> None:
    """A batch larger than a page: its alerts in ``alert_id`` pages, then its clusters from
    their member alerts, read back."""
    network, date, window = batch
    features = raw.features(network, date, window)
    after, total = "", 0
    while True:
        chunk = raw.alerts(network, date, window, after_id=after, limit=chunk_size,
                           columns=ALERT_SCORING_COLUMNS)
        if not len(chunk):
            break
        total += len(chunk)
        put(Work(chunk, features, scoring.alert_matrix(chunk, features)))
        if len(chunk) < chunk_size:  # a short page is the last: no query for an empty one
            break
        after = str(chunk["alert_id"].iloc[-1])
        del chunk
    end, n_clusters = Work(), 0
    if scoring.scores_clusters:
        clusters = raw.clusters(network, date, window)
        n_clusters = len(clusters)
        if n_clusters:
            member_ids = sorted(set(member_table(clusters).ids))
            members = raw.alerts_by_id(network, date, window, member_ids, columns=ALERT_SCORING_COLUMNS)
            end.clusters.append(partial(scoring.score_clusters_from_alerts, clusters, members, features))
    end.done.append(BatchDone(batch, total, n_clusters))
    put(end)


def _read(raw: RawStore, runs: ScoreRuns, scoring: RiskScoring, cfg: BackfillConfig,
          put: Callable[[Any], None]) -> None:
    """What there is to score, in order: pages with their matrices, scored clusters, and each
    batch's end after its rows."""
    version = scoring.model_version
    group: list[tuple[Batch, int]] = []

    def flush() -> None:
        if group:
            _read_group(raw, scoring, group, put)
            group.clear()

    for network, date, window, n_alerts in raw.batches(cfg.networks, cfg.start, cfg.end, cfg.window_days):
        batch = (network, date, window)
        if not cfg.force and runs.completed_alerts(network, date, window, version) == n_alerts:
            flush()
            put(Work(done=[BatchDone(batch, n_alerts, 0, skipped=True)]))
            continue
        if n_alerts > cfg.chunk_size:
            flush()
            _read_paged(raw, scoring, batch, cfg.chunk_size, put)
            continue
        if group and (group[0][0][0] != network
                      or sum(n for _, n in group) + n_alerts > cfg.chunk_size):
            flush()
        group.append((batch, n_alerts))
    flush()


def _write(sink: ScoreSink, runs: ScoreRuns, scoring: RiskScoring, scored_at: dt.datetime,
           work: Iterator[Scored], on_done: Callable[[BatchDone], None]) -> None:
    # One insert per table per page, not one per batch: an insert has a fixed cost in the engine
    # whatever its size, and a page holds up to ten one-day batches, so per-batch cluster and
    # completion inserts were most of the writer's time (a 1M-alert backfill: 12.5-16.4 s against
    # 9.4-11.6 s, alternating).
    version = scoring.model_version
    for item in work:
        if item.scores is not None and item.explanations is not None:
            scoring.fill_explanations(item.scores, item.explanations)
            sink.write_alert_scores(item.scores, "backfill", scored_at)
        if item.challenger is not None:
            sink.write_alert_scores(item.challenger, "backfill", scored_at, table=SHADOW_TABLE)
        clusters = [scored for scored in (score() for score in item.clusters) if len(scored)]
        if clusters:
            sink.write_cluster_scores(pd.concat(clusters, ignore_index=True), "backfill", scored_at)
        # Every row of these batches is written: this is their resume point.
        completed = [CompletedRun(*done.batch, version, done.alerts, done.clusters)
                     for done in item.done if not done.skipped]
        if completed:
            runs.mark_complete(completed)
        for done in item.done:
            on_done(done)


def backfill(raw: RawStore, sink: ScoreSink, scoring: RiskScoring, cfg: BackfillConfig,
             on_batch: Callable[[str, str, int], None] | None = None,
             runs: ScoreRuns | None = None, shadow: RiskScoring | None = None) -> BackfillReport:
    """``runs`` (default: ``sink``, when it keeps the log too, as ClickHouse's store does);
    ``shadow``: a challenger that scores every page too, into the shadow table."""
    log: ScoreRuns = runs if runs is not None else sink  # type: ignore[assignment]
    version = scoring.model_version
    report = BackfillReport(version, clusters_skipped=scoring.bundle.cluster_skipped)
    scored_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()

    def done(batch: BatchDone) -> None:
        name = "/".join(map(str, batch.batch))
        if batch.skipped:
            report.skipped.append(name)
        else:
            report.scored.append(name)
            report.alerts += batch.alerts
            report.clusters += batch.clusters
        if on_batch:
            on_batch(name, "skipped" if batch.skipped else "scored", batch.alerts)

    writes: queue.Queue = queue.Queue(AHEAD)
    writes_iter = iter(writes.get, None)
    writer_error: list[BaseException] = []

    def write_all() -> None:
        try:
            _write(sink, log, scoring, scored_at, writes_iter, done)
        except BaseException as exc:  # noqa: BLE001 - carried to the caller
            writer_error.append(exc)
            for _ in iter(writes.get, None):  # keep taking, so the scorer never blocks
                pass

    writer = threading.Thread(target=write_all, name="backfill-write", daemon=True)
    writer.start()
    pieces, stop_reading = _run_ahead(lambda put: _read(raw, log, scoring, cfg, put), AHEAD,
                                      "backfill-read")

    def send(item: Scored) -> None:
        if writer_error:
            raise writer_error[0]
        writes.put(item)

    try:
        for work in pieces:
            scores = explanations = challenger = None
            if work.alerts is not None and work.matrix is not None:
                scores = scoring.score_columns(work.alerts, work.matrix)
                explanations = scoring.pending_explanations(scores, work.matrix)
                if shadow is not None:
                    challenger = shadow.score_alerts_columns(work.alerts, work.features)[0]
            send(Scored(scores, explanations, challenger, work.clusters, work.done))
    except BaseException:
        stop_reading()
        raise
    finally:
        writes.put(None)
        writer.join()
    if writer_error:
        raise writer_error[0]
    report.seconds = time.perf_counter() - started
    return report
