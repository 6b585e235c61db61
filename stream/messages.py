"""Transport-agnostic messages, dead letters, and decoding of inbound events.

Anything that cannot be scored becomes a :class:`DeadLetter` carrying the original bytes
unchanged and the reason; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.schemas import AlertEvent, ClusterEvent

E = TypeVar("E", bound=BaseModel)


class Reason:
    OVERSIZE = "oversize"
    EMPTY = "empty"
    INVALID_JSON = "invalid_json"
    NON_FINITE = "non_finite_number"
    SCHEMA = "schema_violation"
    UNKNOWN_NETWORK = "unknown_network"
    SCORING_ERROR = "scoring_error"


@dataclass(frozen=True)
class Inbound:
    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None  # seconds since the epoch, as the producer stamped it


@dataclass(frozen=True)
class Outbound:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class DeadLetter:
    message: Inbound
    reason: str
    error: str

    def to_outbound(self, dlq_topic: str) -> Outbound:
        """Original key and bytes unchanged; the why and where travel in headers."""
        m = self.message
        headers = (
            ("dlq.reason", self.reason.encode()),
            ("dlq.error", self.error[:2000].encode("utf-8", "replace")),
            ("dlq.source_topic", m.topic.encode()),
            ("dlq.partition", str(m.partition).encode()),
            ("dlq.offset", str(m.offset).encode()),
        )
        return Outbound(dlq_topic, m.key, m.value, headers)


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


def decode(
    messages: Sequence[Inbound], model: type[E], networks: Iterable[str] | None,
    max_bytes: int,
) -> tuple[list[tuple[Inbound, E]], list[DeadLetter]]:
    """Split messages into (message, event) pairs and dead letters."""
    allowed = set(networks) if networks is not None else None
    valid: list[tuple[Inbound, E]] = []
    dead: list[DeadLetter] = []
    for message in messages:
        value = message.value
        if not value:
            dead.append(DeadLetter(message, Reason.EMPTY, "message has no value"))
            continue
        if len(value) > max_bytes:
            dead.append(DeadLetter(message, Reason.OVERSIZE, f"{len(value)} bytes > limit {max_bytes}"))
            continue
        try:
            event = model.model_validate_json(value)
        except ValidationError as exc:
            dead.append(DeadLetter(message, _reason(exc), _brief(exc)))
            continue
        network = event.network  # type: ignore[attr-defined]
        if allowed is not None and network not in allowed:
            dead.append(DeadLetter(message, Reason.UNKNOWN_NETWORK,
                                   f"network {network!r} is not one of {sorted(allowed)}"))
            continue
        valid.append((message, event))
    return valid, dead


def decode_alerts(
    messages: Sequence[Inbound], networks: Iterable[str] | None, max_bytes: int
) -> tuple[list[tuple[Inbound, AlertEvent]], list[DeadLetter]]:
    return decode(messages, AlertEvent, networks, max_bytes)


def decode_clusters(
    messages: Sequence[Inbound], networks: Iterable[str] | None, max_bytes: int
) -> tuple[list[tuple[Inbound, ClusterEvent]], list[DeadLetter]]:
    return decode(messages, ClusterEvent, networks, max_bytes)
