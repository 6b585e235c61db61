"""Backfill holds one page of a batch at a time: a page's matrix is released once it is written."""

from __future__ import annotations

import datetime as dt
import gc
import weakref

import numpy as np
import pandas as pd

from batch.backfill import score_one_batch


class Pages:
    """A raw store of one batch whose alerts come in pages of ``limit``."""

    def __init__(self, n: int, alive) -> None:  # noqa: ANN001
        self.ids = [f"a{i:05d}" for i in range(n)]
        self.alive = alive
        self.alive_at_clusters: int | None = None

    def features(self, *_):  # noqa: ANN002, ANN201
        return pd.DataFrame()

    def alerts(self, *_, after_id: str, limit: int, columns):  # noqa: ANN001, ANN002, ANN201
        page = [i for i in self.ids if i > after_id][:limit]
        return pd.DataFrame({"alert_id": page})

    def clusters(self, *_):  # noqa: ANN002, ANN201
        gc.collect()
        self.alive_at_clusters = self.alive()
        return pd.DataFrame()


class Scoring:
    scores_clusters = True

    def __init__(self) -> None:
        self.matrices: list[weakref.ref] = []

    def score_alerts_columns(self, chunk, features):  # noqa: ANN001, ANN201
        matrix = np.zeros((len(chunk), 1000))
        self.matrices.append(weakref.ref(matrix))
        return chunk, matrix


class Sink:
    def write_alert_scores(self, *_) -> None:  # noqa: ANN002
        pass


def test_pages_already_written_are_not_kept():
    scoring = Scoring()
    raw = Pages(1_000, lambda: sum(ref() is not None for ref in scoring.matrices))
    n, _ = score_one_batch(raw, Sink(), scoring, "ethereum", dt.date(2025, 1, 1), 7, chunk_size=100)
    assert n == 1_000 and len(scoring.matrices) == 10
    assert raw.alive_at_clusters is not None and raw.alive_at_clusters <= 1
