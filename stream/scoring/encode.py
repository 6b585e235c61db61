"""ScoreEvents for the output topic, from the score columns RiskScoring returns."""

from __future__ import annotations

import numpy as np
import orjson

from shared.scoring import ScoreColumns
from stream.boundary import OutboundRecords
from stream.scoring.partitioning import partitions_for

EVENT_COLUMNS = ("network", "processing_date", "window_days", "alert_id", "address", "score",
                 "rank_score", "risk_level", "model_version", "explanation", "qc_sample")


def score_events(scores: ScoreColumns, topic: str, partitions: int, scored_at: str) -> OutboundRecords:
    """One ScoreEvent per row, keyed by alert_id (columns read once as lists, not row by row)."""
    column = {name: np.asarray(scores[name]).tolist() if name != "processing_date" else None
              for name in EVENT_COLUMNS}
    days = scores["processing_date"]
    distinct, codes = np.unique(days, return_inverse=True)
    iso = [str(d) for d in distinct]  # each distinct date written once
    column["processing_date"] = [iso[c] for c in codes]
    keys = [a.encode() for a in column["alert_id"]]
    values = [
        orjson.dumps({
            "network": network, "processing_date": date, "window_days": window,
            "alert_id": alert_id, "address": address, "score": score, "rank_score": rank,
            "risk_level": level, "model_version": version,
            "explanation": orjson.Fragment(explanation),  # already JSON, written by RiskScoring
            "qc_sample": qc, "scored_at": scored_at, "source": "stream",
        })
        for network, date, window, alert_id, address, score, rank, level, version, explanation, qc in zip(
            *column.values(), strict=True)
    ]
    return OutboundRecords(topic, keys, values, partitions_for(keys, partitions))
