"""Everything the scoring process owns, built from its settings: ClickHouse, the model, the
feature cache, the sink and the three processors. Imported only in that process."""

from __future__ import annotations

from shared.clickhouse.connection import connect
from shared.clickhouse.migrations import schema_problems
from shared.clickhouse.score_store import ScoreStore
from shared.context import Context
from shared.drift import DriftThresholds, RollingRows, compare
from shared.read_api import ReadRequest
from shared.scoring import ScoringPolicy
from shared.settings import Settings
from stream.disposition_processor import DispositionBatchProcessor
from stream.feature_lookup import CachedFeatureLookup
from stream.messages import BatchOutcome, BatchRequest, ModelStatus, SinkUnavailable
from stream.model_holder import ModelHolder
from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
from stream.reads import ReadQueries
from stream.shadow import ShadowScorer
from stream.sinks import ClickHouseStreamSink, load_sink


class ScoringService:
    def __init__(self, settings: Settings) -> None:
        """Fails here, at startup, when the model, the sink or a setting is missing."""
        context = Context(settings)
        self.holder = ModelHolder(context.models, ScoringPolicy.from_settings(settings))
        self.holder.load_initial()
        self.sink = load_sink(settings.stream_sink, ClickHouseStreamSink(context.raw, context.scores))
        self.sink.ping()
        config = StreamConfig.from_settings(settings)
        self.reads = ReadQueries(settings, context.target, lambda: self.holder.scoring.model_version)
        # The challenger writes from a thread of its own: a client of its own too (a server
        # refuses two concurrent queries in one session; the embedded engine would queue them).
        shadow_store = ScoreStore(connect(context.target, create_database=False), context.target.database)
        lookup = CachedFeatureLookup(context.raw, settings.feature_cache_size, settings.feature_cache_ttl)
        self.live = RollingRows(settings.drift_window)
        self.thresholds = DriftThresholds(settings.drift_psi_watch, settings.drift_psi_act)
        self.processors = {
            "alert": AlertBatchProcessor(self.holder, lookup, self.sink, config, self.live,
                                         ShadowScorer(shadow_store)),
            "cluster": ClusterBatchProcessor(self.holder, context.raw, self.sink, config),
            "disposition": DispositionBatchProcessor(
                context.dispositions, settings.max_message_bytes,
                lambda: schema_problems(context.client, context.target.database, ("alert_dispositions",))),
        }

    def status(self) -> ModelStatus:
        return ModelStatus(self.holder.scoring.model_version, self.holder.networks,
                           self.holder.status.failed, self.holder.status.last_error,
                           self.holder.fallback)

    def process(self, request: BatchRequest) -> BatchOutcome:
        return self.processors[request.kind].process(request)

    def refresh(self) -> tuple[str | None, ModelStatus]:
        return self.holder.refresh(), self.status()

    def ping(self) -> None:
        try:
            self.sink.ping()
        except Exception as exc:  # noqa: BLE001
            raise SinkUnavailable.caused_by(exc) from exc

    def read(self, request: ReadRequest) -> bytes:
        """A read API answer, in a read thread; ClickHouse failing is :class:`SinkUnavailable`."""
        return self.reads.read(request)

    def drift(self) -> dict:
        """PSI of the live window against the promoted model's training reference."""
        scoring = self.holder.scoring
        ref = scoring.bundle.alert_scorer.metadata.get("drift_reference")
        if ref is None:
            return {"model_version": scoring.model_version, "rows": 0, "features": {},
                    "note": "this model was trained without a drift reference; retrain to get one"}
        names = scoring.bundle.feature_spec.names
        report = compare(ref, self.live.matrix(len(names)), names, self.thresholds)
        return {"model_version": scoring.model_version, **report}
