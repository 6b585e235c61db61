"""Event contracts on Kafka. Unknown fields are ignored; numbers must be finite; every value
must be storable as it is (dates inside ClickHouse's Date range, counts inside their integer type),
so that a write never fails on one event's data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# One pattern for network names, in events and in SOT folders alike.
NETWORK_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Network = Annotated[str, StringConstraints(pattern=NETWORK_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=65_536)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_FEATURES = 1_000
# ClickHouse's Date holds 1970-01-01 .. 2149-06-06; outside it a write fails or, worse, clamps.
StorableDate = Annotated[dt.date, Field(ge=dt.date(1970, 1, 1), le=dt.date(2149, 6, 6))]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
MAX_ENVELOPE_ALERTS = 10_000


class _Event(BaseModel):
    # Only keys are cached while parsing JSON: ids and addresses never repeat, and a cache of
    # values kept them alive across the worker's heap (measured: +12 MB kept after 60,000 alerts
    # in envelopes, against +41 MB caching values too; reading them is ~10 % slower).
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, cache_strings="keys")


class _BatchEvent(_Event):
    """An input event: versioned, and keyed to its SOT batch (network, date, window)."""

    schema_version: Literal[1] = 1
    network: Network
    processing_date: StorableDate
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
    total_alerts: UInt32 = 0
    total_volume_usd: FiniteFloat | None = None
    severity_max: Text = ""
    confidence_avg: FiniteFloat | None = None


class AlertEnvelope(_Event):
    """Many alerts in one message (``amlscore replay --envelope N``): the worker scores each as if
    it had arrived alone. Each item is validated on its own, so one bad alert is dead-lettered
    alone (as its own JSON, with ``dlq.envelope_item``) and the rest are scored."""

    schema_version: Literal[1] = 1
    alerts: Annotated[list[dict], Field(min_length=1, max_length=MAX_ENVELOPE_ALERTS)]


class ValidAlertEnvelope(AlertEnvelope):
    """An envelope whose every item is a valid AlertEvent, read from its JSON in one pass (each
    item validated as a message of its own would be). ``alert_id`` is only there to tell that the
    message had one: then it is an alert, not an envelope."""

    alerts: Annotated[list[AlertEvent], Field(min_length=1, max_length=MAX_ENVELOPE_ALERTS)]
    alert_id: object = None


class Contribution(_Event):
    feature: str
    value: float | None
    contribution: float


class ScoreEvent(_Event):
    network: str
    processing_date: StorableDate
    window_days: int
    alert_id: str
    address: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    rank_score: float
    risk_level: Literal["low", "medium", "high", "critical", "suppressible"]
    model_version: str
    explanation: list[Contribution]
    qc_sample: bool = False  # below the suppression threshold, kept in the queue as a QC sample
    scored_at: dt.datetime
    source: Literal["stream", "backfill"]


DISPOSITIONS = ("true_positive", "false_positive", "inconclusive", "escalated")
Disposition = Literal["true_positive", "false_positive", "inconclusive", "escalated"]
# A decision's clock may run a little ahead of ours; beyond this it is refused as in the future.
DECIDED_AT_SKEW = dt.timedelta(minutes=5)


class DispositionEvent(_BatchEvent):
    """An investigator's decision on one alert. Every decision is kept; the latest one made by a
    given time is the alert's label as of that time."""

    alert_id: NonEmpty
    disposition: Disposition
    analyst: NonEmpty
    decided_at: dt.datetime
    note: Annotated[str, StringConstraints(max_length=4096)] = ""
    sar_filed: bool = False

    @field_validator("note", "sar_filed", mode="before")
    @classmethod
    def _null_is_unset(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            return "" if info.field_name == "note" else False
        return value

    @field_validator("decided_at")
    @classmethod
    def _decided_in_the_past(cls, value: dt.datetime) -> dt.datetime:
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        if value > dt.datetime.now(dt.UTC) + DECIDED_AT_SKEW:
            raise ValueError("decided_at lies in the future")
        if value.year < 1970:
            raise ValueError("decided_at is before 1970")
        return value


class DispositionPost(_Event):
    """The body of ``POST /alerts/{alert_id}/disposition``: the alert id comes from the path and
    the analyst from the caller's token; ``decided_at`` defaults to the time of the request."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    network: Network
    processing_date: StorableDate
    window_days: Annotated[int, Field(ge=1, le=3650)] = 7
    disposition: Disposition
    decided_at: dt.datetime | None = None
    note: Annotated[str, StringConstraints(max_length=4096)] = ""
    sar_filed: bool = False


def disposition_label(disposition: str, sar_filed: bool) -> float:
    """An alert's training label from its decision: a SAR filed, a true positive or an escalation
    → 1; a false positive → 0; inconclusive → NaN (no label)."""
    if sar_filed or disposition in ("true_positive", "escalated"):
        return 1.0
    if disposition == "false_positive":
        return 0.0
    return float("nan")
