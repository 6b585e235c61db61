"""Decoding and validating inbound events.

An alert message holds one AlertEvent or an AlertEnvelope of many; each alert is validated on
its own. What fails becomes a dead letter with its reason; the rest goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from shared.schemas import AlertEnvelope, AlertEvent, ClusterEvent
from stream.boundary import DeadLetter, MicroBatch, Reason

E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class Decoded(Generic[E]):
    events: list[E]
    sources: list[int]          # message index of each event in the batch
    items: list[int | None]     # index inside its envelope, None for a message of its own
    raws: list[dict | None]     # an envelope item as it came, for its dead letter
    dead: list[DeadLetter]

    def dead_letter(self, batch: MicroBatch, i: int, reason: str, error: str) -> DeadLetter:
        """A dead letter for event ``i`` (an envelope item travels as its own JSON)."""
        return item_letter(batch, self.sources[i], self.items[i], self.raws[i], reason, error)


def item_letter(batch: MicroBatch, i: int, item: int | None, raw: dict | None, reason: str,
                error: str) -> DeadLetter:
    """Message ``i``'s dead letter; for an envelope item, that item alone, as it came."""
    return DeadLetter(batch.message(i), reason, error, item, None if raw is None else orjson.dumps(raw))


def _reason(exc: ValidationError) -> str:
    kinds = {error["type"] for error in exc.errors()}
    if "json_invalid" in kinds:
        return Reason.INVALID_JSON
    if "finite_number" in kinds:
        return Reason.NON_FINITE
    return Reason.SCHEMA


def _brief(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "<root>"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _envelope(value: bytes) -> AlertEnvelope | None:
    """The message as an envelope, or None when it is not one (then the single-event error
    stands)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "alerts" not in data or "alert_id" in data:
        return None
    try:
        return AlertEnvelope.model_validate(data)
    except ValidationError:
        return None


def keeping_features(names: Collection[str]) -> Callable[[AlertEvent], AlertEvent]:
    """An alert with only the features a model reads. Applied at decode, so what a batch holds is
    bounded by the model's feature count, whatever names the events carry."""
    wanted = frozenset(names)

    def keep(event: AlertEvent) -> AlertEvent:
        features = event.features
        if not features:
            return event
        kept = {name: value for name, value in features.items() if name in wanted}
        return event if len(kept) == len(features) else event.model_copy(update={"features": kept})
    return keep


def decode(batch: MicroBatch, model: type[E], networks: Iterable[str] | None, max_bytes: int,
           envelopes: bool = False, trim: Callable[[E], E] | None = None) -> Decoded[E]:
    allowed = set(networks) if networks is not None else None
    out: Decoded[E] = Decoded([], [], [], [], [])

    def accept(i: int, item: int | None, event: E, raw: dict | None) -> None:
        network = event.network  # type: ignore[attr-defined]
        if allowed is not None and network not in allowed:
            out.dead.append(item_letter(batch, i, item, raw, Reason.UNKNOWN_NETWORK,
                                        f"network {network!r} is not one of {sorted(allowed)}"))
            return
        out.events.append(trim(event) if trim is not None else event)
        out.sources.append(i)
        out.items.append(item)
        out.raws.append(raw)

    for i, value in enumerate(batch.values):
        if not value:
            out.dead.append(DeadLetter(batch.message(i), Reason.EMPTY, "message has no value"))
            continue
        if len(value) > max_bytes:
            out.dead.append(DeadLetter(batch.message(i), Reason.OVERSIZE,
                                       f"{len(value)} bytes > limit {max_bytes}"))
            continue
        try:
            accept(i, None, model.model_validate_json(value), None)
            continue
        except ValidationError as exc:
            error = exc
        envelope = _envelope(value) if envelopes else None
        if envelope is None:
            out.dead.append(DeadLetter(batch.message(i), _reason(error), _brief(error)))
            continue
        for item, raw in enumerate(envelope.alerts):
            try:
                accept(i, item, model.model_validate(raw), raw)
            except ValidationError as exc:
                out.dead.append(item_letter(batch, i, item, raw, _reason(exc), _brief(exc)))
    return out


def decode_alerts(batch: MicroBatch, networks: Iterable[str] | None, max_bytes: int,
                  feature_names: Collection[str] | None = None) -> Decoded[AlertEvent]:
    """``feature_names``: the address features the models read; the others are dropped here."""
    trim = keeping_features(feature_names) if feature_names is not None else None
    return decode(batch, AlertEvent, networks, max_bytes, envelopes=True, trim=trim)


def decode_clusters(batch: MicroBatch, networks: Iterable[str] | None,
                    max_bytes: int) -> Decoded[ClusterEvent]:
    return decode(batch, ClusterEvent, networks, max_bytes)
