"""Reading and re-driving dead letters.

The DLQ is a log: reading it changes nothing, and a re-driven message stays in it too. Re-drive
publishes the original key and bytes, unchanged, to the input topic, e.g. after a schema or
network-list fix; anything still invalid is dead-lettered again with its reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from shared.kafka_io import publish


@dataclass(frozen=True)
class DeadLetterRecord:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int

    @property
    def reason(self) -> str:
        return self.headers.get("dlq.reason", "unknown")


async def read_dead_letters(bootstrap: str, topic: str, idle: float = 2.0,
                            limit: int | None = None) -> list[DeadLetterRecord]:
    """Every record of the DLQ, from the beginning, until it has been quiet for ``idle`` s."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # a consumer that never started still holds a client
        raise
    out: list[DeadLetterRecord] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle and (limit is None or len(out) < limit):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                quiet_since = time.monotonic()
                out += [DeadLetterRecord(r.key, r.value,
                                         {k: v.decode("utf-8", "replace") for k, v in (r.headers or ())},
                                         r.partition, r.offset) for r in records]
    finally:
        await consumer.stop()
    return out[:limit] if limit else out


def reasons(records: Iterable[DeadLetterRecord]) -> Counter:
    return Counter(r.reason for r in records)


def redrive(bootstrap: str, records: Iterable[DeadLetterRecord], target_topic: str) -> int:
    chosen = [(target_topic, r.key or b"", r.value or b"") for r in records if r.value]
    return asyncio.run(publish(iter(chosen), bootstrap))
