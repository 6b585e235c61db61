"""Everything the scoring process owns, built from its settings: ClickHouse, the model, the
address-feature cache, the sink and the three processors; and its periodic housekeeping."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection

from shared.clickhouse.connection import connect
from shared.clickhouse.migrations import schema_problems
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.score_store import ScoreStore
from shared.clickhouse.storage import slow_file_creation
from shared.context import Context
from shared.drift import DriftThresholds, RollingRows, compare
from shared.scoring import ScoringPolicy
from shared.settings import Settings
from stream.boundary import (
    DECISIONS,
    DRIFT,
    MODEL,
    PING,
    Housekeeping,
    ModelStatus,
    ReadRequest,
    ScoringOutcome,
    ScoringRequest,
    SinkUnavailable,
)
from stream.memory import return_freed_heap
from stream.scoring.address_features import AddressFeatureCache
from stream.scoring.alerts import AlertProcessor, StreamConfig
from stream.scoring.clusters import ClusterProcessor
from stream.scoring.dispositions import DispositionProcessor
from stream.scoring.model_holder import ModelHolder
from stream.scoring.reads import ReadQueries
from stream.scoring.shadow import ShadowScorer
from stream.scoring.sinks import ClickHouseStreamSink, load_sink

log = logging.getLogger(__name__)


class ScoringService:
    def __init__(self, settings: Settings) -> None:
        """Fails here, at startup, when the model, the sink or a setting is missing."""
        context = Context(settings)
        target, database = context.target, context.target.database
        self.holder = ModelHolder(context.models, ScoringPolicy.from_settings(settings))
        self.holder.load_initial()

        def own_client() -> RawStore:  # a client for work that runs beside the scoring thread's
            return RawStore(connect(target, create_database=False), database)
        default_sink = ClickHouseStreamSink(
            context.raw, context.scores, raw_beside=own_client(),
            challenger=ScoreStore(own_client().client, database))
        self.sink = load_sink(settings.stream_sink, default_sink)
        self.sink.ping()
        config = StreamConfig.from_settings(settings)
        self.reads = ReadQueries(settings, target, lambda: self.holder.scoring.model_version)
        self.live = RollingRows(settings.drift_window)
        self.thresholds = DriftThresholds(settings.drift_psi_watch, settings.drift_psi_act)
        self.shadow = ShadowScorer(self.sink)
        self.processors = {
            "alert": AlertProcessor(
                self.holder, AddressFeatureCache(context.raw, settings.feature_cache_size,
                                                 settings.feature_cache_ttl,
                                                 whole_key_source=own_client()),
                self.sink, config, self.live, self.shadow),
            "cluster": ClusterProcessor(self.holder, context.raw, self.sink, config),
            "disposition": DispositionProcessor(
                context.dispositions, settings.max_message_bytes, settings.dlq_topic,
                lambda: schema_problems(context.client, database, ("alert_dispositions",))),
        }
        self._decisions: dict | None = None   # the last decision figures computed, not yet reported
        self._counting: threading.Thread | None = None
        # Said once the worker can run: its writes are what a slow filesystem slows down.
        if target.interface == "chdb" and target.path is not None:
            warning = slow_file_creation(target.path)
            if warning:
                log.warning(warning)

    def status(self) -> ModelStatus:
        return ModelStatus(self.holder.scoring.model_version, self.holder.networks,
                           self.holder.status.failed, self.holder.status.last_error,
                           self.holder.fallback)

    def process(self, request: ScoringRequest) -> ScoringOutcome:
        return self.processors[request.kind].process(request)

    def read(self, request: ReadRequest) -> bytes:
        """A read API answer, in a read thread; ClickHouse failing is :class:`SinkUnavailable`."""
        return self.reads.read(request)

    def housekeeping(self, due: Collection[str]) -> Housekeeping:
        """The periodic work that is ``due``, between two micro-batches (so a model swap lands
        between them): follow the promoted and shadow pointers, ping the store, recompute drift,
        count the decisions (in a thread of its own: a scan of the score tables must not hold up
        scoring; its figures come with a later call); and return freed heap pages to the OS."""
        loaded, refused_before = None, self.holder.status.failed
        if MODEL in due:
            loaded = self.holder.refresh()
        sink_error = None
        if PING in due:
            try:
                self.sink.ping()
            except Exception as exc:  # noqa: BLE001
                sink_error = str(SinkUnavailable.caused_by(exc))
        if DECISIONS in due and (self._counting is None or not self._counting.is_alive()):
            self._counting = threading.Thread(target=self._count_decisions, name="decision-figures",
                                              daemon=True)
            self._counting.start()
        decisions, self._decisions = self._decisions, None
        return_freed_heap()  # what the micro-batches since the last call freed
        return Housekeeping(self.status(), model_loaded=loaded,
                            model_refused=self.holder.status.failed > refused_before,
                            sink_error=sink_error, drift=self.drift() if DRIFT in due else None,
                            decisions=decisions, shadow=self.shadow.totals())

    def _count_decisions(self) -> None:
        try:
            self._decisions = self.reads.decision_figures()
        except Exception as exc:  # noqa: BLE001 - the gauges keep their last values
            log.warning("decision figures not computed: %s", exc)

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
