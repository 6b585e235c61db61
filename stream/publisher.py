"""Producing score events and dead letters, confirmed: ``publish`` returns once the broker has
acknowledged every record (acks=all), or raises.

Records are appended to one batch per partition (aiokafka's batch API), which costs a fraction
of a ``send()`` per record. Score events come with their partition already chosen (by key, with
the Java client's murmur2, in the scoring process); the rest is partitioned here the same way.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from stream.messages import OutboundColumns

Record = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]


class EventPublisher(Protocol):
    async def publish(self, records: Sequence[OutboundColumns]) -> None: ...

    async def partitions(self, topic: str) -> int: ...

    async def stop(self) -> None: ...


class KafkaBatchPublisher:
    def __init__(self, bootstrap: str, request_size: int = 4 << 20) -> None:
        self.bootstrap = bootstrap
        self.request_size = request_size
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            # No idempotence: brokers without it (Tansu) refuse the producer; the at-least-once
            # protocol does not need it.
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                        enable_idempotence=False, linger_ms=0,
                                        max_request_size=self.request_size)
            await producer.start()
            self._producer = producer
        return self._producer

    async def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            producer = await self._ensure()
            self._partitions[topic] = len(await producer.partitions_for(topic))
        return self._partitions[topic]

    async def publish(self, records: Sequence[OutboundColumns]) -> None:
        producer = await self._ensure()
        by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for columns in records:
            partitions = columns.partitions
            if partitions is None:
                n = await self.partitions(columns.topic)
                # dead letters: few, so the pure-Python murmur2 (no numpy in this process)
                partitions = [(murmur2(k or b"") & 0x7FFFFFFF) % n for k in columns.keys]
            headers = columns.headers or [()] * len(columns)
            for key, value, partition, header in zip(columns.keys, columns.values, partitions,
                                                     headers, strict=True):
                by_partition[(columns.topic, partition)].append((key, value, header))
        pending = []
        try:
            for (topic, partition), group in by_partition.items():
                batch = producer.create_batch()
                for key, value, header in group:
                    if batch.append(key=key, value=value, timestamp=None, headers=list(header)) is None:
                        pending.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()  # full: shipped, start the next
                        batch.append(key=key, value=value, timestamp=None, headers=list(header))
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            await asyncio.gather(*pending)
        except Exception:
            self._partitions.clear()  # partition counts may have changed; look them up again
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
