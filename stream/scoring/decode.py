"""Decoding and validating inbound events.

An alert message holds one AlertEvent or an AlertEnvelope of many; each alert is validated on
its own. What fails becomes a dead letter with its reason; the rest goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from shared.schemas import AlertEnvelope, AlertEvent, ClusterEvent, ValidAlertEnvelope
from stream.boundary import DeadLetter, MicroBatch, Reason

E = TypeVar("E", bound=BaseModel)


@dataclass(frozen=True)
class Decoded(Generic[E]):
    events: list[E]
    sources: list[int]          # message index of each event in the batch
    items: list[int | None]     # index inside its envelope, None for a message of its own
    dead: list[DeadLetter]
    # Envelopes read again for their items' dead letters, once per message however many fail.
    _reread: dict[int, tuple[list, Callable[[object], bytes]]] = field(
        default_factory=dict, repr=False, compare=False)

    def dead_letter(self, batch: MicroBatch, i: int, reason: str, error: str) -> DeadLetter:
        """A dead letter for event ``i`` (an envelope item travels as its own JSON)."""
        return self.letter(batch, self.sources[i], self.items[i], reason, error)

    def letter(self, batch: MicroBatch, i: int, item: int | None, reason: str, error: str,
               raw: dict | None = None) -> DeadLetter:
        """Message ``i``'s dead letter; for an envelope item, that item alone, as it came
        (``raw``, or read again from its message: the items that go on are not kept as they
        came)."""
        if item is None:
            return DeadLetter(batch.message(i), reason, error)
        if raw is not None:
            return DeadLetter(batch.message(i), reason, error, item, orjson.dumps(raw))
        if i not in self._reread:
            self._reread[i] = _envelope_items(batch.values[i])
        items, dumps = self._reread[i]
        return DeadLetter(batch.message(i), reason, error, item, dumps(items[item]))


def _envelope_items(value: bytes) -> tuple[list, Callable[[object], bytes]]:
    """An envelope's items as they came, and how to write one back as JSON."""
    try:
        return orjson.loads(value)["alerts"], orjson.dumps
    except orjson.JSONDecodeError:  # NaN in a field nobody reads, say: valid all the same
        return json.loads(value)["alerts"], lambda item: json.dumps(item).encode()


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


def _valid_envelope(value: bytes) -> list[AlertEvent] | None:
    """The alerts of an envelope whose items are all valid, parsed from its bytes in one pass (no
    dict per item as it came); None otherwise: then each item is read on its own, so that the
    bad ones go alone, or the message is not an envelope."""
    try:
        envelope = ValidAlertEnvelope.model_validate_json(value)
    except ValidationError:
        return None
    return None if "alert_id" in envelope.model_fields_set else envelope.alerts


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
        # The usual case, every name wanted, is one set operation: no dict is built per event.
        if not features or wanted.issuperset(features):
            return event
        kept = {name: value for name, value in features.items() if name in wanted}
        return event.model_copy(update={"features": kept})
    return keep


def decode(batch: MicroBatch, model: type[E], networks: Iterable[str] | None, max_bytes: int,
           envelopes: bool = False, trim: Callable[[E], E] | None = None) -> Decoded[E]:
    allowed = set(networks) if networks is not None else None
    out: Decoded[E] = Decoded([], [], [], [])

    def accept(i: int, item: int | None, event: E, raw: dict | None = None) -> None:
        network = event.network  # type: ignore[attr-defined]
        if allowed is not None and network not in allowed:
            out.dead.append(out.letter(batch, i, item, Reason.UNKNOWN_NETWORK,
                                       f"network {network!r} is not one of {sorted(allowed)}", raw))
            return
        out.events.append(trim(event) if trim is not None else event)
        out.sources.append(i)
        out.items.append(item)

    for i, value in enumerate(batch.values):
        if not value:
            out.dead.append(DeadLetter(batch.message(i), Reason.EMPTY, "message has no value"))
            continue
        if len(value) > max_bytes:
            out.dead.append(DeadLetter(batch.message(i), Reason.OVERSIZE,
                                       f"{len(value)} bytes > limit {max_bytes}"))
            continue
        # An envelope is tried first, and only when its key is there at all: read as one alert
        # it fails only after turning all its items into Python objects for the error (measured:
        # 36 ms for 500 alerts, against 4 ms to read them as an envelope). What is read as an
        # envelope has no alert_id, so it could not have been read as an alert: the order
        # changes no outcome.
        if envelopes and b'"alerts"' in value:
            valid = _valid_envelope(value)
            if valid is not None:
                for item, event in enumerate(valid):
                    accept(i, item, event)  # type: ignore[arg-type]
                continue
            envelope = _envelope(value)  # some items are bad: each read alone
            if envelope is not None:
                for item, raw in enumerate(envelope.alerts):
                    try:
                        accept(i, item, model.model_validate(raw), raw)
                    except ValidationError as exc:
                        out.dead.append(out.letter(batch, i, item, _reason(exc), _brief(exc), raw))
                continue
        try:
            accept(i, None, model.model_validate_json(value))
        except ValidationError as exc:
            out.dead.append(DeadLetter(batch.message(i), _reason(exc), _brief(exc)))
    return out


def decode_alerts(batch: MicroBatch, networks: Iterable[str] | None, max_bytes: int,
                  feature_names: Collection[str] | None = None) -> Decoded[AlertEvent]:
    """``feature_names``: the address features the models read; the others are dropped here."""
    trim = keeping_features(feature_names) if feature_names is not None else None
    return decode(batch, AlertEvent, networks, max_bytes, envelopes=True, trim=trim)


def decode_clusters(batch: MicroBatch, networks: Iterable[str] | None,
                    max_bytes: int) -> Decoded[ClusterEvent]:
    return decode(batch, ClusterEvent, networks, max_bytes)
