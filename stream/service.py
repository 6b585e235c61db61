"""Everything the scoring process owns, built from its settings: ClickHouse, the model, the
feature cache, the sink and the two processors. Imported only in that process."""

from __future__ import annotations

from shared.clickhouse.score_reads import ScoreReads
from shared.context import Context
from shared.drift import DriftThresholds, RollingRows, compare
from shared.read_api import NotFound, ReadRequest, answer
from shared.scoring import ScoringPolicy
from shared.settings import Settings
from stream.feature_lookup import CachedFeatureLookup
from stream.messages import BatchOutcome, BatchRequest, ModelStatus, SinkUnavailable
from stream.model_holder import ModelHolder
from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
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
        self.reads = ScoreReads(context.client, context.target.database)
        lookup = CachedFeatureLookup(context.raw, settings.feature_cache_size, settings.feature_cache_ttl)
        self.live = RollingRows(settings.drift_window)
        self.thresholds = DriftThresholds(settings.drift_psi_watch, settings.drift_psi_act)
        self.processors = {
            "alert": AlertBatchProcessor(self.holder, lookup, self.sink, config, self.live,
                                         ShadowScorer(context.scores)),
            "cluster": ClusterBatchProcessor(self.holder, context.raw, self.sink, config),
        }

    def status(self) -> ModelStatus:
        return ModelStatus(self.holder.scoring.model_version, self.holder.networks,
                           self.holder.status.failed, self.holder.status.last_error)

    def process(self, request: BatchRequest) -> BatchOutcome:
        return self.processors[request.kind].process(request)

    def refresh(self) -> tuple[str | None, ModelStatus]:
        return self.holder.refresh(), self.status()

    def ping(self) -> None:
        try:
            self.sink.ping()
        except Exception as exc:  # noqa: BLE001
            raise SinkUnavailable.caused_by(exc) from exc

    def read(self, request: ReadRequest) -> dict:
        """A read API answer; ClickHouse failing is :class:`SinkUnavailable` (the view's 503)."""
        if request.what == "drift":
            return self.drift()
        try:
            return answer(self.reads, request, self.holder.scoring.model_version)
        except NotFound:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SinkUnavailable.caused_by(exc) from exc

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
