"""HTTP views on the worker: liveness (progress), readiness (model + ClickHouse), metrics."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.app import Worker

READY_CACHE_SECONDS = 2.0


def install_views(worker: Worker) -> None:
    app = worker.app
    ping_cache: dict[str, float | str | None] = {"at": 0.0, "error": None}

    def lag() -> list:
        rows = []
        consumer = app.consumer
        for tp in sorted(consumer.assignment()):
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not fetched yet
                continue
            position = worker.progress.positions.get((tp.topic, tp.partition))
            if highwater is not None and position is not None:
                rows.append(((("topic", tp.topic), ("partition", str(tp.partition))),
                             max(0, highwater - position - 1)))
        return rows

    def assigned() -> list:
        counts: dict[str, int] = {}
        for tp in app.consumer.assignment():
            counts[tp.topic] = counts.get(tp.topic, 0) + 1
        return [((("topic", topic),), float(n)) for topic, n in sorted(counts.items())]

    worker.metrics.gauge("amlscore_consumer_lag", lag)
    worker.metrics.gauge("amlscore_assigned_partitions", assigned)
    worker.metrics.gauge("amlscore_model_info", lambda: [
        ((("version", worker.scorer.status.version),), 1.0)] if worker.scorer.status else [])

    @app.page("/live")
    async def live(web, request):  # noqa: ANN001, ANN202 - faust view signature
        ok, detail = worker.progress.liveness()
        return web.json(detail, status=200 if ok else 503)

    @app.page("/ready")
    async def ready(web, request):  # noqa: ANN001, ANN202
        if time.monotonic() - float(ping_cache["at"] or 0) > READY_CACHE_SECONDS:
            try:
                await worker.scorer.ping(timeout=READY_CACHE_SECONDS)
                ping_cache["error"] = None
            except TimeoutError:
                ping_cache["error"] = "no answer within 2s (the scoring process is busy or retrying)"
            except Exception as exc:  # noqa: BLE001
                ping_cache["error"] = f"{type(exc).__name__}: {exc}"[:300]
            ping_cache["at"] = time.monotonic()
        status = worker.scorer.status
        problems = [] if status else ["no model loaded"]
        if ping_cache["error"]:
            problems.append(f"ClickHouse unreachable: {ping_cache['error']}")
        body = {"status": "ready" if not problems else "not ready", "problems": problems,
                "model_version": status.version if status else None,
                "model_reload_failures": status.reload_failures if status else 0}
        return web.json(body, status=200 if not problems else 503)

    @app.page("/metrics")
    async def metrics(web, request):  # noqa: ANN001, ANN202
        return web.text(worker.metrics.render(), content_type="text/plain; version=0.0.4")
