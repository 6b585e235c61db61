"""HTTP views on the worker: /live, /ready (both from state, never waiting behind a micro-batch),
/metrics (Prometheus), open to probes and scrapers; and the API behind :mod:`stream.access`:
score reads (/scores, /alerts/{alert_id}, /clusters, /drift), the investigators' queue (/queue)
and their decisions (POST /alerts/{alert_id}/disposition), answered by the scoring process's
read threads (never behind a batch), bounded in number (429), time (503) and body size."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import faust
import orjson

from shared.read_api import (
    MAX_DECISION_BYTES,
    BadRequest,
    NotFound,
    ReadRequest,
    parse_decision,
    parse_page,
)
from stream.access import ApiAccess
from stream.boundary import SinkUnavailable
from stream.health import Health
from stream.pipeline import Pipeline
from stream.scoring_supervisor import (
    ReadsBusy,
    ReadTimedOut,
    ScoringProcess,
    ScoringProcessFailed,
    ScoringProcessRestarted,
)
from stream.worker_metrics import GaugeReading, WorkerMetrics

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


DRIFT_FRESH_SECONDS = 2.0     # GET /drift answers a computation at most this old


async def bounded_body(request, limit: int) -> bytes:  # noqa: ANN001 - aiohttp's request
    """The body, read no further than ``limit`` bytes (a chunked body has no length to check)."""
    chunks, size = [], 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def install_views(app: faust.App, health: Health, metrics: WorkerMetrics, pipeline: Pipeline,
                  scoring_process: ScoringProcess, access: ApiAccess) -> None:
    """The gauges and /drift read what the scoring process last reported
    (``pipeline.housekeeping.observed``, refreshed by the pipeline's housekeeping calls): no view
    calls into it on a schedule of its own."""
    observed = pipeline.housekeeping.observed
    _plain_access_log()

    def decision_gauges() -> Iterable[GaugeReading]:
        decided = observed.decisions
        bands = decided.get("bands", {})
        yield ("amlscore_decisions_stored", "Decisions in alert_dispositions per disposition (all workers)",
               [({"disposition": d}, n) for d, n in sorted(decided.get("decisions", {}).items())])
        yield ("amlscore_decided_alerts", "Alerts with a decision, per risk band of their score",
               [({"risk_level": b}, v["decided"]) for b, v in sorted(bands.items())])
        yield ("amlscore_decided_true_positive_share", "Share of true positives (escalations and SARs "
               "included) among decided alerts, per risk band",
               [({"risk_level": b}, v["true_positive_share"]) for b, v in sorted(bands.items())])
        yield ("amlscore_hours_to_decision_median", "Median hours from an alert's first score to its "
               "decision, per risk band",
               [({"risk_level": b}, v["median_hours_to_decision"]) for b, v in sorted(bands.items())
                if v["median_hours_to_decision"] is not None])

    def drift_gauges() -> Iterable[GaugeReading]:
        features = observed.drift.get("features", {})
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
        status = scoring_process.status
        yield ("amlscore_model_info", "The model version in use",
               [({"version": status.version}, 1.0)] if status else [])
        fallback = status.fallback if status else None
        yield ("amlscore_model_fallback", "1 while the promoted version (wanted) does not load and "
               "an earlier one (running) scores instead",
               [({"wanted": fallback["wanted"], "running": fallback["running"]}, 1.0)] if fallback else [])
        yield ("amlscore_oldest_unacked_seconds", "Age of the oldest unacknowledged event per lane",
               [({"kind": k}, v) for k, v in health.liveness()[1]["oldest_unacked_s"].items()])
        yield ("amlscore_scoring_process_restarts", "Times the scoring process died and was replaced",
               [({}, len(scoring_process.restarts))])
        yield from drift_gauges()
        yield from decision_gauges()

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

    def guarded(handler: Callable[..., Awaitable[tuple[int, dict | bytes]]],  # noqa: ANN202
                writes: bool = False):
        """An API endpoint: the caller's token checked first (``writes``: a token is needed even
        on loopback), the handler given who called, one access-log line after."""
        async def view(web, request, **path):  # noqa: ANN001, ANN202
            started = time.perf_counter()
            authorization = request.headers.get("Authorization")
            decision = access.check_writer(authorization) if writes else access.check(authorization)
            if decision.status != 200:
                status, body = decision.status, {"error": decision.message}
            else:
                status, body = await handler(request, decision.who, **path)
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            access_log.info("%s who=%s path=%s status=%d ms=%.1f", "write" if writes else "read",
                            decision.who, request.path, status, (time.perf_counter() - started) * 1000)
            metrics.reads.labels(status=str(status)).inc()
            return web.bytes(body if isinstance(body, bytes) else orjson.dumps(body), status=status,
                             headers=headers, content_type="application/json")
        return view

    async def query(request: ReadRequest) -> tuple[int, dict | bytes]:
        try:
            return 200, await scoring_process.read(request)
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
        async def handler(request, who: str) -> tuple[int, dict | bytes]:  # noqa: ANN001
            try:
                params = parse_page(dict(request.query))
            except BadRequest as exc:
                return 400, {"error": str(exc)}
            return await query(ReadRequest(what=what, page=params))
        return handler

    app.page("/scores")(guarded(page("scores")))
    app.page("/clusters")(guarded(page("clusters")))
    app.page("/queue")(guarded(page("queue")))

    async def drift_answer(request, who: str) -> tuple[int, dict | bytes]:  # noqa: ANN001
        # At most one recomputation per DRIFT_FRESH_SECONDS, however many ask: a storm of
        # /drift requests costs the scoring process nothing more.
        drift = await pipeline.housekeeping.fresh_drift(DRIFT_FRESH_SECONDS)
        return (200, {**drift, "as_of": observed.drift_at}) if drift else \
            (503, {"error": "drift not computed yet"})

    app.page("/drift")(guarded(drift_answer))

    async def alert_answer(request, who: str, alert_id: str) -> tuple[int, dict | bytes]:  # noqa: ANN001
        if not alert_id or len(alert_id) > 256:
            return 400, {"error": "alert_id must be 1..256 characters"}
        return await query(ReadRequest(what="alert", alert_id=alert_id))

    app.page("/alerts/{alert_id}")(guarded(alert_answer))

    async def decide(request, who: str, alert_id: str) -> tuple[int, dict | bytes]:  # noqa: ANN001
        # The size is checked before the body is read: a client cannot make this process hold more.
        length = request.content_length
        if length is not None and length > MAX_DECISION_BYTES:
            return 413, {"error": f"body: {length} bytes > limit {MAX_DECISION_BYTES}"}
        try:
            event = parse_decision(alert_id, await bounded_body(request, MAX_DECISION_BYTES + 1), who)
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        status, answer = await query(ReadRequest(what="decide", decision=event))
        if status != 200:
            return status, answer
        metrics.decisions.labels(disposition=event.disposition, source="api").inc()
        return 201, answer

    decide_view = guarded(decide, writes=True)

    class AlertDisposition(faust.web.View):
        async def post(self, request, alert_id: str):  # noqa: ANN001, ANN201 - faust view signature
            return await decide_view(self.web, request, alert_id=alert_id)

    app.page("/alerts/{alert_id}/disposition")(AlertDisposition)
