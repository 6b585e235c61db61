"""Score a date range from ClickHouse into the score tables, batch by batch.

Per batch: alerts are read in ``alert_id`` pages of ``chunk_size``, scored with the shared
RiskScoring, and written (idempotent: same alert + model version replaces). Clusters are scored
from their member alerts. Only when all of that is written is the batch logged complete for the
model version, so an interrupted backfill resumes at the first incomplete batch.

Reading, scoring and writing overlap, across pages and across batches: a reader thread runs
ahead (what is complete, the features, the pages, the clusters), the caller's thread scores, a
writer thread writes and logs each batch complete after its last row, in order. The engine and
XGBoost release Python's lock while they work, so the threads share both cores. At most a couple
of pages wait between two steps (bounded queues), and a page's rows are released once written.
Give the sink a ClickHouse client other than the raw store's, or the two serialise on it.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shared.clickhouse.raw_store import RawStore
from shared.cluster_features import cluster_members
from shared.features import ALERT_SCORING_COLUMNS
from shared.scoring import RiskScoring
from shared.sink import SHADOW_TABLE, ScoreRuns, ScoreSink

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
class Page:
    batch: Batch
    alerts: pd.DataFrame
    features: pd.DataFrame
    whole_batch: bool  # the batch's only page: its matrix serves its clusters


@dataclass
class Clusters:
    batch: Batch
    clusters: pd.DataFrame
    members: pd.DataFrame | None  # member alerts, read when the batch took more than one page
    features: pd.DataFrame


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


def _read(raw: RawStore, runs: ScoreRuns, scoring: RiskScoring, cfg: BackfillConfig,
          put: Callable[[Any], None]) -> None:
    """What there is to score, in order: each batch's pages, its clusters, its end."""
    version = scoring.model_version
    for network, date, window, n_alerts in raw.batches(cfg.networks, cfg.start, cfg.end, cfg.window_days):
        batch = (network, date, window)
        if not cfg.force and runs.completed_alerts(network, date, window, version) == n_alerts:
            put(BatchDone(batch, n_alerts, 0, skipped=True))
            continue
        features = raw.features(network, date, window)
        pages, after, total, whole = 0, "", 0, False
        while True:
            chunk = raw.alerts(network, date, window, after_id=after, limit=cfg.chunk_size,
                               columns=ALERT_SCORING_COLUMNS)
            if not len(chunk):
                break
            pages += 1
            whole = pages == 1 and len(chunk) < cfg.chunk_size
            total += len(chunk)
            put(Page(batch, chunk, features, whole))
            if len(chunk) < cfg.chunk_size:
                break  # a short page is the last: no query to learn that the next is empty
            after = str(chunk["alert_id"].iloc[-1])
            del chunk
        n_clusters = 0
        if scoring.scores_clusters:
            clusters = raw.clusters(network, date, window)
            n_clusters = len(clusters)
            if n_clusters:
                members = None
                if not whole:  # the batch took more than one page: read the member alerts back
                    member_ids = sorted({m for ids in cluster_members(clusters) for m in ids})
                    members = raw.alerts_by_id(network, date, window, member_ids,
                                               columns=ALERT_SCORING_COLUMNS)
                put(Clusters(batch, clusters, members, features))
        put(BatchDone(batch, total, n_clusters))


def _write(sink: ScoreSink, runs: ScoreRuns, version: str, scored_at: dt.datetime,
           work: Iterator[tuple[str, Any]], on_done: Callable[[BatchDone], None]) -> None:
    for kind, payload in work:
        if kind == "alerts":
            sink.write_alert_scores(payload, "backfill", scored_at)
        elif kind == "challenger":
            sink.write_alert_scores(payload, "backfill", scored_at, table=SHADOW_TABLE)
        elif kind == "clusters":
            sink.write_cluster_scores(payload, "backfill", scored_at)
        else:  # a batch's end: every row of it is written, so this is the resume point
            done: BatchDone = payload
            if not done.skipped:
                runs.mark_complete(*done.batch, version, done.alerts, done.clusters)
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
            _write(sink, log, version, scored_at, writes_iter, done)
        except BaseException as exc:  # noqa: BLE001 - carried to the caller
            writer_error.append(exc)
            for _ in iter(writes.get, None):  # keep taking, so the scorer never blocks
                pass

    writer = threading.Thread(target=write_all, name="backfill-write", daemon=True)
    writer.start()
    pieces, stop_reading = _run_ahead(lambda put: _read(raw, log, scoring, cfg, put), AHEAD,
                                      "backfill-read")

    def send(kind: str, payload: Any) -> None:
        if writer_error:
            raise writer_error[0]
        writes.put((kind, payload))

    last_page: tuple[Batch, pd.Index, Any] | None = None  # a whole batch's ids and matrix
    try:
        for piece in pieces:
            if isinstance(piece, Page):
                scores, matrix = scoring.score_alerts_columns(piece.alerts, piece.features)
                send("alerts", scores)
                if shadow is not None:  # the challenger's rows, after the champion's
                    send("challenger", shadow.score_alerts_columns(piece.alerts, piece.features)[0])
                last_page = ((piece.batch, pd.Index(piece.alerts["alert_id"].astype(str)), matrix)
                             if piece.whole_batch else None)
            elif isinstance(piece, Clusters):
                if piece.members is None and last_page is not None and last_page[0] == piece.batch:
                    _, ids, matrix = last_page  # the whole batch is at hand: reuse its matrix
                    scores = scoring.score_clusters(piece.clusters, ids, matrix)
                else:
                    scores = scoring.score_clusters_from_alerts(piece.clusters, piece.members,
                                                                piece.features)
                send("clusters", scores)
            else:
                last_page = None
                send("done", piece)
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
