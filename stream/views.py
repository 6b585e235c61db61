"""HTTP views on the worker: /live, /ready (both from state, never waiting behind a batch),
/metrics (Prometheus), and the read-only score API (/scores, /alerts/{alert_id}, /clusters),
answered by the scoring process, which holds ClickHouse, between two batches."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import faust

from shared.read_api import BadRequest, NotFound, ReadRequest, parse_page
from stream.health import Health
from stream.messages import SinkUnavailable
from stream.metrics import GaugeReading, WorkerMetrics
from stream.pipeline import Pipeline
from stream.scoring_process import ScoringProcess

log = logging.getLogger(__name__)


DRIFT_REFRESH_SECONDS = 15.0  # how often the PSI gauges are recomputed from the live window


def install_views(app: faust.App, health: Health, metrics: WorkerMetrics, pipeline: Pipeline,
                  scorer: ScoringProcess) -> None:
    drift: dict = {}  # the scoring process's last drift answer, for the gauges

    @app.timer(DRIFT_REFRESH_SECONDS)
    async def refresh_drift() -> None:
        try:
            drift.update(await scorer.read(ReadRequest(what="drift")))
        except Exception as exc:  # noqa: BLE001 - gauges keep their last values; /live tells of trouble
            log.warning("drift gauges not refreshed: %s", exc)

    def drift_gauges() -> Iterable[GaugeReading]:
        features = drift.get("features", {})
        yield ("amlscore_feature_psi", "Population stability index of each feature, live window vs training",
               [({"feature": f}, v["psi"]) for f, v in features.items() if v["psi"] is not None])
        yield ("amlscore_feature_missing_share", "Share of missing values per feature in the live window",
               [({"feature": f}, v["missing"]) for f, v in features.items() if v["missing"] is not None])

    def gauges() -> Iterable[GaugeReading]:
        consumer = app.consumer
        lag, assigned = [], {}
        for tp in sorted(consumer.assignment()):
            assigned[tp.topic] = assigned.get(tp.topic, 0) + 1
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not fetched yet
                continue
            position = pipeline.positions.get((tp.topic, tp.partition))
            if highwater is not None and position is not None:
                lag.append(({"topic": tp.topic, "partition": str(tp.partition)},
                            max(0, highwater - position - 1)))
        yield "amlscore_consumer_lag", "Messages not yet acknowledged per partition", lag
        yield ("amlscore_assigned_partitions", "Partitions assigned to this worker",
               [({"topic": t}, n) for t, n in sorted(assigned.items())])
        yield ("amlscore_model_info", "The model version in use",
               [({"version": scorer.status.version}, 1.0)] if scorer.status else [])
        yield ("amlscore_oldest_unacked_seconds", "Age of the oldest unacknowledged event per lane",
               [({"kind": k}, v) for k, v in health.liveness()[1]["oldest_unacked_s"].items()])
        yield ("amlscore_scoring_process_restarts", "Times the scoring process died and was replaced",
               [({}, len(scorer.restarts))])
        yield from drift_gauges()

    metrics.gauges(gauges)

    @app.page("/live")
    async def live(web, request):  # noqa: ANN001, ANN202 - faust view signature
        ok, detail = health.liveness()
        return web.json(detail, status=200 if ok else 503)

    @app.page("/ready")
    async def ready(web, request):  # noqa: ANN001, ANN202
        ok, detail = health.readiness()
        return web.json(detail, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics_page(web, request):  # noqa: ANN001, ANN202
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    async def read(web, request: ReadRequest):  # noqa: ANN001, ANN202
        try:
            return web.json(await scorer.read(request))
        except NotFound as exc:
            return web.json({"error": str(exc)}, status=404)
        except SinkUnavailable as exc:
            return web.json({"error": f"scores cannot be read now: {exc}"}, status=503)

    def page(what: str):  # noqa: ANN202
        async def view(web, request):  # noqa: ANN001, ANN202
            try:
                query = parse_page(dict(request.query))
            except BadRequest as exc:
                return web.json({"error": str(exc)}, status=400)
            return await read(web, ReadRequest(what=what, page=query))
        return view

    app.page("/scores")(page("scores"))
    app.page("/clusters")(page("clusters"))

    @app.page("/drift")
    async def drift_page(web, request):  # noqa: ANN001, ANN202
        return await read(web, ReadRequest(what="drift"))

    @app.page("/alerts/{alert_id}")
    async def alert(web, request, alert_id):  # noqa: ANN001, ANN202
        if not alert_id or len(alert_id) > 256:
            return web.json({"error": "alert_id must be 1..256 characters"}, status=400)
        return await read(web, ReadRequest(what="alert", alert_id=alert_id))
