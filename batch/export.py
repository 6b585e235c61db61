"""Scores of a date range to Parquet, with rank positions from the ``alert_rankings`` view."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from shared.clickhouse.score_store import ScoreStore


def export_scores(scores: ScoreStore, out: Path, networks: Sequence[str], start: dt.date,
                  end: dt.date, window_days: int, model_version: str) -> int:
    table = scores.rankings_arrow(networks, start, end, window_days, model_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    return table.num_rows
