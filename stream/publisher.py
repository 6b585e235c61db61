"""Producing score events and dead letters, confirmed: ``publish`` returns once the broker has
acknowledged every record (acks=all), or raises."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import faust

from stream.messages import Outbound


class EventPublisher(Protocol):
    async def publish(self, records: Sequence[Outbound]) -> None: ...


class FaustPublisher:
    """Sends through the Faust app's own aiokafka producer, all records of a batch at once."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def publish(self, records: Sequence[Outbound]) -> None:
        if not records:
            return
        producer = self.app.producer
        pending = [
            await producer.send(r.topic, r.key, r.value, None, None, list(r.headers) or None)
            for r in records
        ]
        await asyncio.gather(*pending)
