"""The alert processor: decode → columns → address features → score → explain → write → encode.
No DataFrame on the way: an alert's fields become numpy columns once, right after decoding (its
``processing_date`` becomes a datetime64 day there and is never parsed again), and every later
step reads those columns.

``process`` returns once every scorable row of the micro-batch is durably written, with what the
Faust process must publish (score events, dead letters) before it acknowledges anything. It tries
once: a sink that is unavailable raises :class:`~stream.boundary.SinkUnavailable` and the caller
retries the whole micro-batch (writes are idempotent). Nothing about one event can make it raise:
bad events, rows that cannot be scored and rows the sink rejects become dead letters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.clickhouse.ddl import RAW_ALERT_COLUMNS
from shared.drift import RollingRows
from shared.features import KEY_COLUMNS, AddressRows
from shared.schemas import AlertEvent
from shared.scoring import RiskScoring, ScoreColumns
from shared.settings import Settings
from stream.boundary import DeadLetter, Reason, ScoringOutcome, ScoringRequest
from stream.scoring.address_features import AddressFeatureCache
from stream.scoring.decode import Decoded, decode_alerts
from stream.scoring.encode import score_events
from stream.scoring.model_holder import ModelHolder
from stream.scoring.partitioning import partitions_for
from stream.scoring.phases import PhaseTimer, unavailable
from stream.scoring.shadow import ShadowScorer
from stream.scoring.sinks import StreamSink, write_isolating

# The alert's own fields as the stream keeps them: its batch key and the raw_alerts columns.
ALERT_COLUMNS = ("network", "processing_date", "window_days", *RAW_ALERT_COLUMNS)
_FLOATS = frozenset(c for c, kind in RAW_ALERT_COLUMNS.items() if kind == "Float64")

AlertColumns = dict[str, np.ndarray]


@dataclass(frozen=True)
class StreamConfig:
    """What the processors take from the settings (whose defaults are the only defaults)."""

    scores_topic: str
    dlq_topic: str
    max_message_bytes: int
    networks: tuple[str, ...] | None  # None: the networks the model was trained on

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamConfig:
        return cls(settings.scores_topic, settings.dlq_topic, settings.max_message_bytes,
                   settings.networks)


def alert_columns(events: Sequence[AlertEvent]) -> AlertColumns:
    """The events' fields as numpy columns (field values read straight from each model's
    ``__dict__``: ``model_dump`` would validate and copy again)."""
    fields = [e.__dict__ for e in events]
    columns: AlertColumns = {}
    for name in ALERT_COLUMNS:
        values = [f[name] for f in fields]
        if name == "processing_date":
            columns[name] = np.array(values, dtype="datetime64[D]")
        elif name == "window_days":
            columns[name] = np.array(values, dtype=np.int64)
        elif name in _FLOATS:
            columns[name] = np.array(values, dtype=np.float64)  # None → NaN
        else:
            column = np.empty(len(values), dtype=object)  # lists stay lists, never a 2-D array
            column[:] = values
            columns[name] = column
    return columns


def take(columns: AlertColumns, rows: Sequence[int] | np.ndarray) -> AlertColumns:
    return {name: column[rows] for name, column in columns.items()}


def dead_letters_for(dead: list[DeadLetter], topic_partitions: int) -> list[DeadLetter]:
    """The dead letters with their DLQ partition, chosen by the same rule as every record."""
    if not dead:
        return dead
    chosen = partitions_for([d.message.key for d in dead], topic_partitions)
    return [DeadLetter(d.message, d.reason, d.error, d.envelope_item, d.item_value, p)
            for d, p in zip(dead, chosen, strict=True)]


class AlertProcessor:
    def __init__(self, holder: ModelHolder, features: AddressFeatureCache, sink: StreamSink,
                 config: StreamConfig, live: RollingRows | None = None,
                 shadow: ShadowScorer | None = None) -> None:
        self.holder, self.features, self.sink, self.config = holder, features, sink, config
        self._schema_problems = getattr(sink, "schema_problems", None)  # optional for a custom sink
        self.live = live  # the last scored rows' features, for drift
        self.shadow = shadow  # the challenger, after the champion has written

    def _wanted(self, scoring: RiskScoring) -> tuple[str, ...]:
        """The address features the champion and the challenger read: all an event may keep,
        and all a lookup returns."""
        names = dict.fromkeys(scoring.bundle.feature_spec.address_features)
        challenger = getattr(self.holder, "shadow", None)
        if challenger is not None:
            names.update(dict.fromkeys(challenger.bundle.feature_spec.address_features))
        return tuple(names)

    def _address_rows(self, events: Sequence[AlertEvent], alerts: AlertColumns,
                      wanted: tuple[str, ...]) -> AddressRows:
        """Each alert's address features: those it carries, else the store's for its batch key.
        A feature named like a key column is not a feature (it never replaces a key)."""
        matrix = np.full((len(events), len(wanted)), np.nan)
        position = {name: j for j, name in enumerate(wanted) if name not in KEY_COLUMNS}
        looked_up = []
        for i, event in enumerate(events):
            carried = event.features
            if carried is None:
                looked_up.append(i)
                continue
            row = matrix[i]
            for name, value in carried.items():
                j = position.get(name)
                if j is not None and value is not None:
                    row[j] = value
        if looked_up:
            keys = [(str(alerts["network"][i]), alerts["processing_date"][i].item(),
                     int(alerts["window_days"][i])) for i in looked_up]
            addresses = [str(alerts["address"][i]) for i in looked_up]
            matrix[looked_up] = unavailable("feature lookup", self.features.rows, keys, addresses, wanted)
        return AddressRows(wanted, matrix)

    @staticmethod
    def _score(scoring: RiskScoring, alerts: AlertColumns, rows: AddressRows,
               n: int) -> tuple[ScoreColumns | None, np.ndarray, dict[int, str]]:
        try:
            matrix = scoring.alert_matrix(alerts, rows)
            return scoring.score_columns(alerts, matrix), matrix, {}
        except Exception:  # noqa: BLE001 - isolate the rows that cannot be scored
            scored, matrices, failed = [], [], {}
            for i in range(n):
                try:
                    one = take(alerts, [i])
                    matrix = scoring.alert_matrix(one, AddressRows(rows.columns, rows.matrix[[i]]))
                    scored.append(scoring.score_columns(one, matrix))
                    matrices.append(matrix)
                except Exception as exc:  # noqa: BLE001
                    failed[i] = f"{type(exc).__name__}: {exc}"
            if not scored:
                return None, np.empty((0, 0), np.float32), failed
            joined = {name: np.concatenate([s[name] for s in scored]) for name in scored[0]}
            return joined, np.vstack(matrices), failed

    def process(self, request: ScoringRequest) -> ScoringOutcome:
        timer = PhaseTimer()
        scoring = self.holder.scoring  # one model per micro-batch: a hot swap lands between them
        networks = self.config.networks or self.holder.networks or None
        wanted = self._wanted(scoring)
        with timer("decode"):
            decoded = decode_alerts(request.batch, networks, self.config.max_message_bytes, wanted)
            events = decoded.events
            alerts = alert_columns(events) if events else {}
        outcome = ScoringOutcome("alert", model_version=scoring.model_version)
        dead = list(decoded.dead)
        if events:
            with timer("lookup"):
                rows = self._address_rows(events, alerts, wanted)
            with timer("predict"):
                scores, matrix, failed = self._score(scoring, alerts, rows, len(events))
            dead += [decoded.dead_letter(request.batch, i, Reason.SCORING_ERROR, e) for i, e in failed.items()]
            if scores is not None:  # else every row failed: all of them are dead letters
                self._write_scored(scoring, request, decoded, alerts, rows, scores, matrix,
                                   failed, dead, outcome, timer)
        outcome.dead = dead_letters_for(dead, request.partitions.get(self.config.dlq_topic, 1))
        outcome.phases = timer.phases
        return outcome

    def _write_scored(self, scoring: RiskScoring, request: ScoringRequest, decoded: Decoded,
                      alerts: AlertColumns, rows: AddressRows, scores: ScoreColumns,
                      matrix: np.ndarray, failed: dict[int, str], dead: list,
                      outcome: ScoringOutcome, timer: PhaseTimer) -> None:
        if self.live is not None:
            self.live.add(matrix)
        keep = np.array([i for i in range(len(decoded.events)) if i not in failed], dtype=np.int64)
        if failed:
            alerts, rows = take(alerts, keep), AddressRows(rows.columns, rows.matrix[keep])
        with timer("explain"):
            scoring.add_explanations(scores, matrix)
        scored_at = dt.datetime.now(dt.UTC)
        with timer("write"):
            rejected = self._write(alerts, scores, scored_at)
        if rejected:
            dead += [decoded.dead_letter(request.batch, int(keep[i]), Reason.SINK_REJECTED, e)
                     for i, e in rejected.items()]
            kept = np.array([i for i in range(len(keep)) if i not in rejected], dtype=np.int64)
            scores = {name: column[kept] for name, column in scores.items()}
            alerts, rows = take(alerts, kept), AddressRows(rows.columns, rows.matrix[kept])
        if self.shadow is not None:  # only now: the champion's rows are written
            self.shadow.submit(getattr(self.holder, "shadow", None), alerts, rows)
            outcome.shadow = self.shadow.totals()
        n = len(scores["alert_id"])
        if n:
            with timer("encode"):
                outcome.scores = score_events(scores, self.config.scores_topic,
                                              request.partitions.get(self.config.scores_topic, 1),
                                              scored_at.isoformat())
        outcome.scored = n

    def _write(self, alerts: AlertColumns, scores: ScoreColumns, scored_at: dt.datetime) -> dict[int, str]:
        n = len(scores["alert_id"])

        def write(rows: np.ndarray) -> None:
            if len(rows) == n:
                self.sink.write_alerts(alerts, scores, scored_at)
            else:
                self.sink.write_alerts(take(alerts, rows), {k: v[rows] for k, v in scores.items()},
                                       scored_at)
        return write_isolating(write, n, self._schema_problems)

