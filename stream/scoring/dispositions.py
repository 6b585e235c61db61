"""Investigators' decisions from the ``aml.dispositions`` topic, in the scoring process:
decode → write to ``alert_dispositions``. Nothing is scored and nothing is published but the
dead letters; the pipeline acknowledges a micro-batch only once its decisions are written, as
it does for alerts (a decision acknowledged is a decision stored)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from shared.schemas import DispositionEvent
from stream.boundary import Reason, ScoringOutcome, ScoringRequest
from stream.scoring.alerts import dead_letters_for
from stream.scoring.decode import decode
from stream.scoring.phases import PhaseTimer
from stream.scoring.sinks import write_isolating


class DecisionStore(Protocol):
    def write(self, events: Sequence[DispositionEvent], source: str,
              recorded_at: dt.datetime | None = None) -> None: ...


class DispositionProcessor:
    """Every valid decision is stored, on any network: a decision is the investigators' record,
    whichever model scored (or will score) the alert."""

    def __init__(self, store: DecisionStore, max_message_bytes: int, dlq_topic: str,
                 schema_problems: Callable[[], list[str]] | None = None) -> None:
        self.store, self.max_message_bytes, self.dlq_topic = store, max_message_bytes, dlq_topic
        self._schema_problems = schema_problems

    def process(self, request: ScoringRequest) -> ScoringOutcome:
        timer = PhaseTimer()
        with timer("decode"):
            decoded = decode(request.batch, DispositionEvent, None, self.max_message_bytes)
        events = decoded.events
        recorded_at = dt.datetime.now(dt.UTC)
        with timer("write"):
            rejected = write_isolating(
                lambda rows: self.store.write([events[i] for i in rows], "stream", recorded_at),
                len(events), self._schema_problems)
        dead = list(decoded.dead) + [decoded.dead_letter(request.batch, i, Reason.SINK_REJECTED, e)
                                     for i, e in rejected.items()]
        stored = [e for i, e in enumerate(events) if i not in rejected]
        return ScoringOutcome("disposition", phases=timer.phases,
                              dead=dead_letters_for(dead, request.partitions.get(self.dlq_topic, 1)),
                              decisions=dict(Counter(e.disposition for e in stored)))
