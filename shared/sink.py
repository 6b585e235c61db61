"""The score sink contract: where scored rows go. Swappable (ClickHouse, a test double, …)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pandas as pd


class ScoreSink(Protocol):
    def write_alert_scores(self, scores: pd.DataFrame, source: str, scored_at: dt.datetime) -> None:
        """Durably write alert score rows; return only once they are written (or raise)."""

    def write_cluster_scores(self, scores: pd.DataFrame, source: str, scored_at: dt.datetime) -> None:
        """Durably write cluster score rows; return only once they are written (or raise)."""
