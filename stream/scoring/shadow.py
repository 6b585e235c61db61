"""Champion/challenger in the stream: the challenger (``amlscore shadow VERSION``) scores what the
champion has just written, in a thread of its own, into the shadow table. It never reaches
the output topic and never holds up the champion: the champion's rows are written and its outcome
returned before the challenger starts, and when the challenger falls more than ``max_pending``
batches behind, batches are left out of the shadow table (counted) rather than waited for."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from shared.features import AddressRows, AlertColumns, row_count
from shared.scoring import RiskScoring, ScoreColumns

log = logging.getLogger(__name__)


class ChallengerSink(Protocol):
    def write_challenger_scores(self, scores: ScoreColumns, scored_at: dt.datetime) -> None: ...


class ShadowScorer:
    def __init__(self, sink: ChallengerSink, max_pending: int = 8) -> None:
        self.sink = sink
        self.max_pending = max_pending
        self.scored = self.skipped = self.failed = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")

    def submit(self, challenger: RiskScoring | None, alerts: AlertColumns,
               features: AddressRows) -> None:
        n = row_count(alerts)
        if challenger is None or not n:
            return
        with self._lock:
            if self._pending >= self.max_pending:
                self.skipped += n
                return
            self._pending += 1
        self._executor.submit(self._score, challenger, alerts, features)

    def _score(self, challenger: RiskScoring, alerts: AlertColumns, features: AddressRows) -> None:
        n = row_count(alerts)
        try:
            matrix = challenger.alert_matrix(alerts, features)
            scores = challenger.score_columns(alerts, matrix)
            challenger.add_explanations(scores, matrix)
            self.sink.write_challenger_scores(scores, dt.datetime.now(dt.UTC))
            with self._lock:
                self.scored += n
        except Exception:  # a challenger's failure is its own: logged, counted, champion untouched
            with self._lock:
                self.failed += n
            log.exception("challenger %s could not score a batch", challenger.model_version)
        finally:
            with self._lock:
                self._pending -= 1

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {"scored": self.scored, "skipped": self.skipped, "failed": self.failed}
