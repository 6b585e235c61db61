"""Champion/challenger in the stream: the challenger (``amlscore shadow VERSION``) scores what the
champion has just written, in a thread of its own, into ``alert_scores_shadow``. It never reaches
the output topic and never holds up the champion: the champion's rows are written and its outcome
returned before the challenger starts, and when the challenger falls more than ``max_pending``
batches behind, batches are left out of the shadow table (counted) rather than waited for."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from shared.features import FeatureBlock
from shared.scoring import RiskScoring
from shared.sink import ScoreSink

log = logging.getLogger(__name__)
SHADOW_TABLE = "alert_scores_shadow"


class ShadowScorer:
    def __init__(self, sink: ScoreSink, max_pending: int = 8) -> None:
        self.sink = sink
        self.max_pending = max_pending
        self.scored = self.skipped = self.failed = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")

    def submit(self, challenger: RiskScoring | None, alerts: pd.DataFrame,
               features: FeatureBlock | None) -> None:
        if challenger is None or not len(alerts):
            return
        with self._lock:
            if self._pending >= self.max_pending:
                self.skipped += len(alerts)
                return
            self._pending += 1
        self._executor.submit(self._score, challenger, alerts, features)

    def _score(self, challenger: RiskScoring, alerts: pd.DataFrame,
               features: FeatureBlock | None) -> None:
        try:
            matrix = challenger.alert_matrix(alerts, features)
            scores = challenger.score_matrix(alerts, matrix)
            challenger.add_explanations(scores, matrix)
            self.sink.write_alert_scores(scores, "stream", dt.datetime.now(dt.UTC), table=SHADOW_TABLE)
            with self._lock:
                self.scored += len(scores)
        except Exception:  # a challenger's failure is its own: logged, counted, champion untouched
            with self._lock:
                self.failed += len(alerts)
            log.exception("challenger %s could not score a batch", challenger.model_version)
        finally:
            with self._lock:
                self._pending -= 1

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {"scored": self.scored, "skipped": self.skipped, "failed": self.failed}

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for what is queued (tests, shutdown)."""
        self._executor.submit(lambda: None).result(timeout)
