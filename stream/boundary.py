"""Everything that crosses between the worker's two processes, and nothing else.

The **Faust process** (``stream/*.py``) consumes, publishes and acknowledges; the **scoring
process** (``stream/scoring/``) decodes, scores and writes. They exchange only what is defined
(or, for the read API's request, re-exported) here: plain data, pickled over a pipe. A
micro-batch travels as columns (a few lists of bytes and ints): one pickle of a handful of lists
costs a fraction of pickling one object per event. Anything that cannot be scored comes back as
a :class:`DeadLetter` carrying the original bytes unchanged and the reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.outbound import OutboundRecords
from shared.read_api import ReadRequest

__all__ = ["DeadLetter", "Housekeeping", "Inbound", "MicroBatch", "ModelStatus", "OutboundRecords",
           "ReadRequest", "Reason", "ScoringOutcome", "ScoringProcessRestarted", "ScoringRequest",
           "SinkUnavailable"]


class SinkUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """The store cannot take writes or answer reads now: the micro-batch is retried whole, and
    nothing is acknowledged meanwhile. Raised in the scoring process, caught in the Faust one."""

    @classmethod
    def caused_by(cls, exc: BaseException, what: str = "") -> SinkUnavailable:
        return cls(f"{what + ': ' if what else ''}{type(exc).__name__}: {exc}"[:500])


class ScoringProcessRestarted(Exception):  # noqa: N818 - a state the caller retries
    """The scoring process died during the call and a new one took over: nothing the call did
    was acknowledged, so it may be made again."""


class Reason:
    """Why an event was dead-lettered (the ``dlq.reason`` header)."""

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
class MicroBatch:
    """Consecutive messages of one input topic, as columns (what a take gave, or several)."""

    topic: str
    keys: list[bytes | None]
    values: list[bytes | None]
    partitions: list[int]
    offsets: list[int]
    timestamps: list[float | None]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def nbytes(self) -> int:
        """The bytes of its event values (what decoding them costs in memory scales with)."""
        return sum(len(v) for v in self.values if v)

    def spans(self, max_bytes: int) -> list[tuple[int, int]]:
        """Consecutive [start, stop) ranges of at most ``max_bytes`` of values each; a single
        value larger than that is a range of its own."""
        spans, start, size = [], 0, 0
        for i, value in enumerate(self.values):
            n = len(value) if value else 0
            if i > start and size + n > max_bytes:
                spans.append((start, i))
                start, size = i, 0
            size += n
        if start < len(self.values):
            spans.append((start, len(self.values)))
        return spans

    def slice(self, start: int, stop: int) -> MicroBatch:
        return MicroBatch(self.topic, self.keys[start:stop], self.values[start:stop],
                          self.partitions[start:stop], self.offsets[start:stop],
                          self.timestamps[start:stop])

    def message(self, i: int) -> Inbound:
        return Inbound(self.keys[i], self.values[i], self.topic, self.partitions[i],
                       self.offsets[i], self.timestamps[i])

    @classmethod
    def concat(cls, parts: Sequence[MicroBatch]) -> MicroBatch:
        if len(parts) == 1:
            return parts[0]
        return cls(parts[0].topic, [k for b in parts for k in b.keys],
                   [v for b in parts for v in b.values],
                   [p for b in parts for p in b.partitions],
                   [o for b in parts for o in b.offsets],
                   [t for b in parts for t in b.timestamps])


@dataclass(frozen=True)
class DeadLetter:
    message: Inbound
    reason: str
    error: str
    envelope_item: int | None = None  # index of the alert inside an envelope message
    item_value: bytes | None = None   # that alert alone, as JSON (the envelope is not re-sent)
    partition: int | None = None      # of the DLQ, chosen by key in the scoring process

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

    @staticmethod
    def records(topic: str, dead: Sequence[DeadLetter]) -> OutboundRecords:
        return OutboundRecords(topic, [d.message.key for d in dead], [d.value for d in dead],
                               [d.partition if d.partition is not None else -1 for d in dead],
                               [d.headers() for d in dead], one_per_batch=True)


@dataclass(frozen=True)
class ModelStatus:
    """The scoring process's model, as the Faust process reports it (/ready, /metrics)."""

    version: str
    networks: tuple[str, ...]
    reload_failures: int
    last_error: str = ""
    fallback: dict[str, str] | None = None  # {wanted, running, why}: the promoted one did not load


@dataclass(frozen=True)
class ScoringRequest:
    """One micro-batch for the scoring process."""

    kind: str                  # "alert", "cluster" or "disposition"
    batch: MicroBatch
    partitions: dict[str, int]  # topic → partition count now (scores, dead letters)
    final: bool = True          # clusters: score with the members there are, wait no longer


@dataclass
class ScoringOutcome:
    """What the scoring process wrote, and what the Faust process must publish before acking."""

    kind: str
    scored: int = 0    # alerts or clusters scored and written; decisions stored
    unscored: int = 0  # valid events the model cannot score (clusters, for a version without cluster_scorer)
    scores: OutboundRecords | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    model_version: str | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for the trace
    members_pending: bool = False  # clusters: members missing, nothing written; ask again later
    decisions: dict[str, int] = field(default_factory=dict)  # dispositions stored, per disposition
    shadow: dict[str, int] = field(default_factory=dict)  # the challenger's running totals
    started_at: float = 0.0   # wall clock in the scoring process: the call began / ended there
    finished_at: float = 0.0


# What a housekeeping call may be asked to do (a set of these travels with the call): follow the
# promoted and shadow pointers, ping the store, recompute drift, count the decisions.
MODEL, PING, DRIFT, DECISIONS = "model", "ping", "drift", "decisions"


@dataclass(frozen=True)
class Housekeeping:
    """The scoring process's periodic report (one call between micro-batches): its model, whether
    the store answers, and the figures the gauges and ``/drift`` show."""

    model: ModelStatus
    model_loaded: str | None = None        # a version swapped in by this call
    model_refused: bool = False            # a promoted version refused by this call
    sink_error: str | None = None          # None: the store answered
    drift: dict | None = None              # recomputed by this call, else None
    decisions: dict | None = None          # decision figures, when a fresh computation finished
    shadow: dict[str, int] = field(default_factory=dict)  # the challenger's running totals
