"""What crosses between the Faust process and the scoring process: plain data, no framework.

A micro-batch travels as columns (a few lists of bytes and ints): one pickle of a handful of lists
costs a fraction of pickling one object per event. Anything that cannot be scored becomes a
:class:`DeadLetter` carrying the original bytes unchanged and the reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


class SinkUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """The store cannot take writes or answer reads now: the batch is retried whole, and nothing
    is acknowledged meanwhile. Raised in the scoring process, caught in the Faust process."""

    @classmethod
    def caused_by(cls, exc: BaseException, what: str = "") -> SinkUnavailable:
        return cls(f"{what + ': ' if what else ''}{type(exc).__name__}: {exc}"[:500])


class Reason:
    OVERSIZE = "oversize"
    EMPTY = "empty"
    INVALID_JSON = "invalid_json"
    NON_FINITE = "non_finite_number"
    SCHEMA = "schema_violation"
    UNKNOWN_NETWORK = "unknown_network"
    SCORING_ERROR = "scoring_error"
    SINK_REJECTED = "sink_rejected"
    MEMBERS_MISSING = "members_missing"

    @classmethod
    def all(cls) -> list[str]:
        return sorted(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


@dataclass(frozen=True)
class Inbound:
    """One consumed message."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None  # seconds since the epoch, as the producer stamped it


@dataclass(frozen=True)
class InboundBatch:
    """Consecutive messages of one input topic, as columns."""

    topic: str
    keys: list[bytes | None]
    values: list[bytes | None]
    partitions: list[int]
    offsets: list[int]
    timestamps: list[float | None]

    def __len__(self) -> int:
        return len(self.values)

    def message(self, i: int) -> Inbound:
        return Inbound(self.keys[i], self.values[i], self.topic, self.partitions[i],
                       self.offsets[i], self.timestamps[i])

    @classmethod
    def of(cls, messages: Sequence[Inbound]) -> InboundBatch:
        topic = messages[0].topic if messages else ""
        return cls(topic, [m.key for m in messages], [m.value for m in messages],
                   [m.partition for m in messages], [m.offset for m in messages],
                   [m.timestamp for m in messages])

    @classmethod
    def concat(cls, batches: Sequence[InboundBatch]) -> InboundBatch:
        if len(batches) == 1:
            return batches[0]
        return cls(batches[0].topic, [k for b in batches for k in b.keys],
                   [v for b in batches for v in b.values],
                   [p for b in batches for p in b.partitions],
                   [o for b in batches for o in b.offsets],
                   [t for b in batches for t in b.timestamps])


@dataclass(frozen=True)
class DeadLetter:
    message: Inbound
    reason: str
    error: str
    envelope_item: int | None = None  # index of the alert inside an envelope message
    item_value: bytes | None = None   # that alert alone, as JSON (the envelope is not re-sent)

    @property
    def value(self) -> bytes | None:
        return self.item_value if self.envelope_item is not None else self.message.value

    def headers(self) -> tuple[tuple[str, bytes], ...]:
        """Why and where: the original key and bytes travel unchanged beside these."""
        m = self.message
        headers = [
            ("dlq.reason", self.reason.encode()),
            ("dlq.error", self.error[:2000].encode("utf-8", "replace")),
            ("dlq.source_topic", m.topic.encode()),
            ("dlq.partition", str(m.partition).encode()),
            ("dlq.offset", str(m.offset).encode()),
        ]
        if self.envelope_item is not None:
            headers.append(("dlq.envelope_item", str(self.envelope_item).encode()))
        return tuple(headers)


@dataclass
class OutboundColumns:
    """Records for one topic, as columns; ``partitions`` None lets the publisher choose by key."""

    topic: str
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    partitions: list[int] | None = None
    headers: list[tuple[tuple[str, bytes], ...]] | None = None

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def dead_letters(cls, topic: str, dead: Sequence[DeadLetter]) -> OutboundColumns:
        return cls(topic, [d.message.key for d in dead], [d.value for d in dead], None,
                   [d.headers() for d in dead])


@dataclass(frozen=True)
class ModelStatus:
    """The scoring process's model, as the Faust process reports it (/ready, /metrics)."""

    version: str
    networks: tuple[str, ...]
    reload_failures: int
    last_error: str = ""
    fallback: dict[str, str] | None = None  # {wanted, running, why}: the promoted one did not load


@dataclass(frozen=True)
class BatchRequest:
    """One call into the scoring process."""

    kind: str                 # "alert", "cluster" or "disposition"
    batch: InboundBatch
    score_partitions: int     # partitions of the scores topic, for keyed partitioning
    final: bool = True        # clusters: score with the members there are, wait no longer


@dataclass
class BatchOutcome:
    """What the scoring process wrote, and what the Faust process must publish before acking."""

    kind: str
    scored: int = 0    # alerts or clusters scored and written; decisions stored
    unscored: int = 0  # valid events the model cannot score (clusters, for a version without cluster_scorer)
    scores: OutboundColumns | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    model_version: str | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for the trace
    members_pending: bool = False  # clusters: members missing, nothing written; ask again later
    shadow: dict[str, int] = field(default_factory=dict)  # the challenger's running totals
    decisions: dict[str, int] = field(default_factory=dict)  # dispositions stored, per disposition
    started_at: float = 0.0   # wall clock in the scoring process: the call began / ended there
    finished_at: float = 0.0
