"""Event contracts on Kafka (DESIGN §4). Unknown fields are ignored; numbers must be finite."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=65_536)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_FEATURES = 1_000


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class _BatchEvent(_Event):
    """An input event: versioned, and keyed to its SOT batch (network, date, window)."""

    schema_version: Literal[1] = 1
    network: NonEmpty
    processing_date: dt.date
    window_days: Annotated[int, Field(ge=1, le=3650)]


class AlertEvent(_BatchEvent):
    alert_id: NonEmpty
    address: NonEmpty
    typology_type: NonEmpty
    pattern_id: Text = ""
    pattern_type: Text = ""
    severity: Text = ""
    suspected_address_type: Text = ""
    suspected_address_subtype: Text = ""
    alert_confidence_score: FiniteFloat | None = None
    description: Text = ""
    volume_usd: FiniteFloat
    evidence_json: Text = ""
    risk_indicators: Annotated[list[NonEmpty], Field(max_length=256)] = []
    event_time: dt.datetime | None = None
    features: Annotated[dict[NonEmpty, FiniteFloat | None], Field(max_length=MAX_FEATURES)] | None = None


class ClusterEvent(_BatchEvent):
    cluster_id: NonEmpty
    cluster_type: Text = ""
    primary_address: Text = ""
    primary_alert_id: Text = ""
    related_alert_ids: Annotated[list[NonEmpty], Field(max_length=10_000)] = []
    addresses_involved: Annotated[list[NonEmpty], Field(max_length=10_000)] = []
    total_alerts: Annotated[int, Field(ge=0)] = 0
    total_volume_usd: FiniteFloat | None = None
    severity_max: Text = ""
    confidence_avg: FiniteFloat | None = None


class Contribution(_Event):
    feature: str
    value: float | None
    contribution: float


class ScoreEvent(_Event):
    network: str
    processing_date: dt.date
    window_days: int
    alert_id: str
    address: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    rank_score: float
    risk_level: Literal["low", "medium", "high", "critical"]
    model_version: str
    explanation: list[Contribution]
    scored_at: dt.datetime
    source: Literal["stream", "backfill"]
