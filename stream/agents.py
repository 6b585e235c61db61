"""The three Faust agents (alerts, clusters, investigators' decisions). Each only takes
micro-batches and hands them to the pipeline, where the commit protocol lives
(stream/pipeline.py): per-event work in this process stays minimal, as Faust's own per-message
machinery is what bounds the worker here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import faust

from shared.settings import Settings
from stream.boundary import MicroBatch
from stream.pipeline import Pipeline


def micro_batch(topic: str, events: Sequence[Any]) -> MicroBatch:
    messages = [e.message for e in events]
    return MicroBatch(topic, [m.key for m in messages], [m.value for m in messages],
                        [m.partition for m in messages], [m.offset for m in messages],
                        [m.timestamp for m in messages])


def install_agents(app: faust.App, topics: dict[str, faust.TopicT], pipeline: Pipeline,
                   settings: Settings, on_fatal: Callable[[BaseException], None]) -> None:
    async def consume(stream: faust.StreamT, kind: str, topic: str) -> None:
        async def ack(events: Sequence[Any]) -> None:
            for event in events:
                await stream.ack(event)

        try:
            async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait):
                await pipeline.submit(kind, events, micro_batch(topic, events), ack)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Faust would restart the agent and carry on half alive; end the worker instead,
            # for its supervisor to restart (nothing unacked is lost).
            on_fatal(exc)
            raise

    # concurrency=1: with more, Faust can commit past an in-flight message (faust #606).
    @app.agent(topics["alerts"], name="score_alerts", concurrency=1)
    async def score_alerts(stream: faust.StreamT) -> None:
        await consume(stream, "alert", settings.alerts_topic)

    @app.agent(topics["clusters"], name="score_clusters", concurrency=1)
    async def score_clusters(stream: faust.StreamT) -> None:
        await consume(stream, "cluster", settings.clusters_topic)

    @app.agent(topics["dispositions"], name="store_dispositions", concurrency=1)
    async def store_dispositions(stream: faust.StreamT) -> None:
        await consume(stream, "disposition", settings.dispositions_topic)
