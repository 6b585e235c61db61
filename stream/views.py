"""HTTP views on the worker: /live, /ready (both from state, never waiting behind a batch),
/metrics (Prometheus), open to probes and scrapers; and the read-only score API (/scores,
/alerts/{alert_id}, /clusters, /drift), behind :mod:`stream.access`, answered by the scoring
process's read threads (never behind a batch), bounded in number (429) and time (503)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import faust
import orjson

from shared.read_api import BadRequest, NotFound, ReadRequest, parse_page
from stream.access import ApiAccess
from stream.health import Health
from stream.messages import SinkUnavailable
from stream.metrics import GaugeReading, WorkerMetrics
from stream.pipeline import Pipeline
from stream.scoring_process import (
    ReadsBusy,
    ReadTimedOut,
    ScoringProcess,
    ScoringProcessFailed,
    ScoringProcessRestarted,
)

log = logging.getLogger(__name__)
access_log = logging.getLogger("amlscore.access")  # one line per read: who, path, status, ms


def _plain_access_log() -> None:
    """The access log writes plain lines straight to stderr: through the worker's decorated
    handlers a line cost more than the request it records (profiled under a read storm)."""
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] [access] %(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False
        access_log.setLevel(logging.INFO)


DRIFT_REFRESH_SECONDS = 15.0  # how often the PSI gauges are recomputed from the live window
DRIFT_FRESH_SECONDS = 2.0     # GET /drift answers a computation at most this old


def install_views(app: faust.App, health: Health, metrics: WorkerMetrics, pipeline: Pipeline,
                  scorer: ScoringProcess, access: ApiAccess) -> None:
    drift: dict = {}  # the scoring process's last drift answer: the gauges and GET /drift
    _plain_access_log()

    async def refresh_drift() -> None:
        try:
            drift.update(await scorer.drift(), as_of=time.time())
        except Exception as exc:  # noqa: BLE001 - gauges keep their last values; /live tells of trouble
            log.warning("drift gauges not refreshed: %s", exc)

    app.timer(DRIFT_REFRESH_SECONDS)(refresh_drift)

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
        status = scorer.status
        yield ("amlscore_model_info", "The model version in use",
               [({"version": status.version}, 1.0)] if status else [])
        fallback = status.fallback if status else None
        yield ("amlscore_model_fallback", "1 while the promoted version (wanted) does not load and "
               "an earlier one (running) scores instead",
               [({"wanted": fallback["wanted"], "running": fallback["running"]}, 1.0)] if fallback else [])
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

    def guarded(handler: Callable[..., Awaitable[tuple[int, dict | bytes]]]):  # noqa: ANN202
        """A read endpoint: the caller's token checked first, one access-log line after."""
        async def view(web, request, **path):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            decision = access.check(request.headers.get("Authorization"))
            if decision.status != 200:
                status, body = decision.status, {"error": decision.message}
            else:
                status, body = await handler(request, **path)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            access_log.info("read who=%s path=%s status=%d ms=%.1f", decision.who, request.path,
                            status, (time.perf_counter() - started) * 1000)
            metrics.reads.labels(status=str(status)).inc()
            return web.bytes(body if isinstance(body, bytes) else orjson.dumps(body), status=status,
                             headers=headers, content_type="application/json")
        return view

    async def query(request: ReadRequest) -> tuple[int, dict | bytes]:
        try:
            return 200, await scorer.read(request)
        except NotFound as exc:
            return 404, {"error": str(exc)}
        except ReadsBusy:
            return 429, {"error": "too many reads at once; try again shortly"}
        except ReadTimedOut:
            return 503, {"error": "the read took too long (AMLSCORE_API_QUERY_TIMEOUT)"}
        except SinkUnavailable as exc:  # its message is written for the client
            return 503, {"error": f"scores cannot be read now: {exc}"}
        except (ScoringProcessRestarted, ScoringProcessFailed):
            return 503, {"error": "scores cannot be read now: the scoring process is restarting"}

    def page(what: str):  # noqa: ANN202
        async def handler(request) -> tuple[int, dict | bytes]:  # noqa: ANN001
            try:
                params = parse_page(dict(request.query))
            except BadRequest as exc:
                return 400, {"error": str(exc)}
            return await query(ReadRequest(what=what, page=params))
        return handler

    app.page("/scores")(guarded(page("scores")))
    app.page("/clusters")(guarded(page("clusters")))

    refreshing = asyncio.Lock()

    async def drift_answer(request) -> tuple[int, dict | bytes]:  # noqa: ANN001
        # At most one recomputation per DRIFT_FRESH_SECONDS, however many ask: a storm of
        # /drift requests costs the scoring process nothing more.
        async with refreshing:
            if time.time() - drift.get("as_of", 0.0) > DRIFT_FRESH_SECONDS:
                await refresh_drift()
        return (200, dict(drift)) if drift else (503, {"error": "drift not computed yet"})

    app.page("/drift")(guarded(drift_answer))

    async def alert_answer(request, alert_id: str) -> tuple[int, dict | bytes]:  # noqa: ANN001
        if not alert_id or len(alert_id) > 256:
            return 400, {"error": "alert_id must be 1..256 characters"}
        return await query(ReadRequest(what="alert", alert_id=alert_id))

    app.page("/alerts/{alert_id}")(guarded(alert_answer))
