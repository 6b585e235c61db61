"""Score a date range from ClickHouse into the score tables, batch by batch.

Per batch: alerts are read in ``alert_id`` pages of ``chunk_size``, scored with the shared
RiskScoring, and written (idempotent: same alert + model version replaces). Clusters are scored
from their member alerts. Only when all of that is written is the batch logged complete for the
model version, so an interrupted backfill resumes at the first incomplete batch.

The three steps of a page overlap: while one page is scored, the next is read and the one before
is written, each in a thread of its own (the engine and XGBoost release Python's lock while they
work, so this is the other core's work, not a second Python). At most three pages are alive at
once; a page's rows are released once written. Give the sink a ClickHouse client other than the
raw store's, or the two serialise on it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from shared.clickhouse.raw_store import RawStore
from shared.cluster_features import cluster_members
from shared.features import ALERT_SCORING_COLUMNS
from shared.scoring import RiskScoring, ScoreColumns
from shared.sink import SHADOW_TABLE, ScoreRuns, ScoreSink


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


def score_one_batch(raw: RawStore, sink: ScoreSink, scoring: RiskScoring, network: str,
                    date: dt.date, window: int, chunk_size: int,
                    shadow: RiskScoring | None = None) -> tuple[int, int]:
    scored_at = dt.datetime.now(dt.UTC)
    features = raw.features(network, date, window)

    def read(after: str) -> pd.DataFrame:
        return raw.alerts(network, date, window, after_id=after, limit=chunk_size,
                          columns=ALERT_SCORING_COLUMNS)

    def write(chunk: pd.DataFrame, scores: ScoreColumns) -> None:
        sink.write_alert_scores(scores, "backfill", scored_at)
        if shadow is not None:  # the challenger's rows, after the champion's
            sink.write_alert_scores(shadow.score_alerts_columns(chunk, features)[0], "backfill",
                                    scored_at, table=SHADOW_TABLE)

    n_alerts, pages = 0, 0
    only_page = None  # the batch's one page, kept for its clusters; dropped once a second comes
    with ThreadPoolExecutor(1, thread_name_prefix="backfill-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="backfill-write") as writer:
        coming: Future | None = reader.submit(read, "")
        written: Future | None = None
        while coming is not None:
            chunk = coming.result()
            coming = None
            if not len(chunk):
                break
            if len(chunk) == chunk_size:  # a short page is the last: no query to learn that
                coming = reader.submit(read, str(chunk["alert_id"].iloc[-1]))
            scores, matrix = scoring.score_alerts_columns(chunk, features)
            if written is not None:
                written.result()  # one write in flight: a failure surfaces before the next page
            written = writer.submit(write, chunk, scores)
            pages += 1
            only_page = (chunk, matrix) if pages == 1 else None
            n_alerts += len(chunk)
            del chunk, scores, matrix
        if written is not None:
            written.result()
            written = None
    if not scoring.scores_clusters:
        return n_alerts, 0
    clusters = raw.clusters(network, date, window)
    if len(clusters):
        if only_page is not None:  # the whole batch is at hand: reuse its feature matrix
            chunk, matrix = only_page
            scores = scoring.score_clusters(clusters, pd.Index(chunk["alert_id"].astype(str)), matrix)
        else:
            member_ids = sorted({m for ids in cluster_members(clusters) for m in ids})
            members = raw.alerts_by_id(network, date, window, member_ids, columns=ALERT_SCORING_COLUMNS)
            scores = scoring.score_clusters_from_alerts(clusters, members, features)
        sink.write_cluster_scores(scores, "backfill", scored_at)
    return n_alerts, len(clusters)


def backfill(raw: RawStore, sink: ScoreSink, scoring: RiskScoring, cfg: BackfillConfig,
             on_batch: Callable[[str, str, int], None] | None = None,
             runs: ScoreRuns | None = None, shadow: RiskScoring | None = None) -> BackfillReport:
    """``runs`` (default: ``sink``, when it keeps the log too, as ClickHouse's store does);
    ``shadow``: a challenger that scores every page too, into the shadow table."""
    log: ScoreRuns = runs if runs is not None else sink  # type: ignore[assignment]
    version = scoring.model_version
    report = BackfillReport(version, clusters_skipped=scoring.bundle.cluster_skipped)
    started = time.perf_counter()
    for network, date, window, n_alerts in raw.batches(cfg.networks, cfg.start, cfg.end, cfg.window_days):
        name = f"{network}/{date}/{window}"
        if not cfg.force and log.completed_alerts(network, date, window, version) == n_alerts:
            report.skipped.append(name)
            if on_batch:
                on_batch(name, "skipped", n_alerts)
            continue
        alerts, clusters = score_one_batch(raw, sink, scoring, network, date, window, cfg.chunk_size,
                                           shadow)
        # Logged only after every row of the batch is written: this is the resume point.
        log.mark_complete(network, date, window, version, alerts, clusters)
        report.scored.append(name)
        report.alerts += alerts
        report.clusters += clusters
        if on_batch:
            on_batch(name, "scored", alerts)
    report.seconds = time.perf_counter() - started
    return report
