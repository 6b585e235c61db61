"""Agents, timers and lifecycle hooks. The commit protocol lives in :func:`checkpoint`."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from stream.messages import Inbound
from stream.retry import ShutdownRequested, retry_async

if TYPE_CHECKING:
    from stream.app import Worker

log = logging.getLogger(__name__)


def _inbound(event) -> Inbound:  # noqa: ANN001 - a faust EventT
    m = event.message
    return Inbound(m.key, m.value, m.topic, m.partition, m.offset, m.timestamp)


async def checkpoint(worker: Worker, stream, events, kind: str,  # noqa: ANN001 - faust types
                     previous: asyncio.Task | None = None) -> None:
    """Process one micro-batch under the at-least-once protocol.

    1. Flush the sink: the scoring process returns only after every score row is durably
       written; write failures are retried there, never skipped.
    2. Wait for the previous batch to be published and acked: batches may be *processed*
       concurrently, but are published and acked strictly in the order they were taken.
    3. Flush the producer: score events and dead letters are delivered (acks=all).
    4. Only then ack: Faust commits an offset once every event up to it is acked, so no offset is
       ever committed past an unwritten row. A crash before this point redelivers the batch;
       idempotent writes (ReplacingMergeTree) absorb the duplicates.
    """
    started = time.monotonic()
    worker.progress.begin()
    messages = [_inbound(e) for e in events]
    worker.metrics.events_in.inc(len(messages), topic=messages[0].topic)
    result = await worker.scorer.process(kind, messages)
    if previous is not None:
        await previous  # raises if it failed: then this batch is not acked either
    await retry_async("publish", lambda: worker.publisher.publish(result.outbound), worker.backoff,
                      worker.stopping, lambda _e: worker.metrics.publish_failures.inc())
    for event in events:
        await stream.ack(event)
    now = time.time()
    worker.metrics.scored.inc(result.scored, kind=kind)
    for dead in result.dead:
        worker.metrics.dead_lettered.inc(reason=dead.reason)
    worker.metrics.batch_seconds.observe(time.monotonic() - started)
    if kind == "alert":
        worker.metrics.event_to_score.observe_many(now - m.timestamp for m in messages if m.timestamp)
    worker.progress.done({(m.topic, m.partition): m.offset for m in messages})


def install_agents(worker: Worker) -> None:
    app, settings = worker.app, worker.settings

    async def consume(stream, kind: str) -> None:  # noqa: ANN001
        # Two batches in flight: one being scored in the scoring process while this process
        # takes, publishes and acks the other. More would only queue behind the same two cores.
        in_flight: list[asyncio.Task] = []
        try:
            async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait):
                previous = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.ensure_future(
                    checkpoint(worker, stream, events, kind, previous)))
                if len(in_flight) >= settings.batches_in_flight:
                    await in_flight.pop(0)
            for task in in_flight:
                await task
        except ShutdownRequested:
            log.info("stopping with batches unacknowledged; they will be redelivered")

    # concurrency=1: with more, Faust can commit past an in-flight message (faust #606).
    @app.agent(worker.topics["alerts"], name="score_alerts", concurrency=1)
    async def score_alerts(stream) -> None:  # noqa: ANN001
        await consume(stream, "alert")

    @app.agent(worker.topics["clusters"], name="score_clusters", concurrency=1)
    async def score_clusters(stream) -> None:  # noqa: ANN001
        await consume(stream, "cluster")

    @app.task
    async def declare_output_topics() -> None:
        for name in ("scores", "dlq"):
            await worker.topics[name].maybe_declare()

    @app.timer(1.0)
    async def heartbeat() -> None:
        worker.progress.tick()

    @app.timer(settings.model_poll_interval)
    async def reload_model() -> None:
        failed_before = worker.scorer.status.reload_failures
        version = await worker.scorer.refresh()  # queued behind batches: a swap lands between them
        if version is not None:
            worker.metrics.model_reloads.inc(result="loaded")
        elif worker.scorer.status.reload_failures > failed_before:
            worker.metrics.model_reloads.inc(result="refused")

    @app.on_before_shutdown.connect
    async def stop_retrying(sender, **_kwargs) -> None:  # noqa: ANN001
        # A graceful stop can hang on a broker that is gone (seen: a worker ignored SIGTERM for
        # 90 minutes). Exiting without a final commit is safe here: unacked batches are redelivered.
        deadline = threading.Timer(settings.shutdown_timeout, os._exit, args=(1,))
        deadline.daemon = True
        deadline.start()
        worker.stopping.set()  # retry loops give up; in-flight batches stay unacknowledged
        worker.scorer.stop()
        await worker.publisher.stop()
