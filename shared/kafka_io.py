"""Kafka topic helpers both adapters use: create topics, produce records in batches, read a topic
from the beginning. (The worker itself consumes and produces through Faust; these serve replay,
the DLQ tools, the demo, tests and benchmarks.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

Record = tuple[str, bytes, bytes]  # topic, key, value


Options = Mapping[str, Any] | None  # client security (shared.kafka_security), none for PLAINTEXT


async def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int,
                        options: Options = None) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
        return missing
    finally:
        await admin.close()


async def publish(records: Iterable[Record], bootstrap: str, rate: float | None = None,
                  on_sent: Callable[[int], None] | None = None, window: int = 5000,
                  max_request_size: int = 1 << 20, options: Options = None) -> int:
    """Batched produce (acks=all, idempotence off: the broker here has none); optionally paced
    to ``rate`` records per second. Returns the number of records delivered."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                                linger_ms=5, max_batch_size=1 << 18, max_request_size=max_request_size,
                                **(options or {}))
    await producer.start()
    sent = 0
    try:
        pending = []
        started = time.monotonic()
        for topic, key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= window:
                await asyncio.gather(*pending)
                if on_sent:
                    on_sent(len(pending))
                pending.clear()
        await asyncio.gather(*pending)
        if on_sent and pending:
            on_sent(len(pending))
    finally:
        await producer.stop()
    return sent


async def read_topic(bootstrap: str, topic: str, *, expected: int | None = None, idle: float = 3.0,
                     timeout: float = 60.0, keys: set[bytes] | None = None,
                     options: Options = None) -> list[ConsumerRecord]:
    """The records of ``topic`` from its beginning (only those keyed in ``keys``, if given), read
    without a consumer group: until ``expected`` records, or ``idle`` quiet seconds, or
    ``timeout``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, **(options or {}))
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a consumer that never started still holds a client
        raise
    records: list[ConsumerRecord] = []
    started = quiet_since = time.monotonic()
    try:
        while time.monotonic() - started < timeout and time.monotonic() - quiet_since < idle:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for got in batch.values():
                quiet_since = time.monotonic()
                records += got if keys is None else [r for r in got if r.key in keys]
            if expected is not None and len(records) >= expected:
                break
    finally:
        await consumer.stop()
    return records
