"""Everything the scoring process owns, built from its settings: ClickHouse, the model, the
feature cache, the sink and the two processors. Imported only in that process."""

from __future__ import annotations

from shared.clickhouse.score_reads import ScoreReads
from shared.context import Context
from shared.read_api import NotFound, ReadRequest, answer
from shared.scoring import ScoringPolicy
from shared.settings import Settings
from stream.feature_lookup import CachedFeatureLookup
from stream.messages import BatchOutcome, BatchRequest, ModelStatus, SinkUnavailable
from stream.model_holder import ModelHolder
from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
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
        self.processors = {
            "alert": AlertBatchProcessor(self.holder, lookup, self.sink, config),
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
        try:
            return answer(self.reads, request, self.holder.scoring.model_version)
        except NotFound:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SinkUnavailable.caused_by(exc) from exc
