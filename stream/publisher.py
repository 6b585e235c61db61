"""Producing score events and dead letters, confirmed: ``publish`` returns once the broker has
acknowledged every record (acks=all), or raises.

Records are appended to one batch per partition (aiokafka's batch API), which costs a fraction
of a ``send()`` per record. Score events come with their partition already chosen (by key, with
the Java client's murmur2, in the scoring process); dead letters are partitioned here the same
way, one record to a batch, so that a broker refusing one of them refuses only that one.

Failures are of two kinds:

- transient (a broker away, a leader moving): :class:`PublishIncomplete` names the records not
  yet acknowledged, and the caller retries only those — what was delivered is never sent again;
- permanent (authorization, an invalid topic, a record too large): retrying cannot help. A dead
  letter too large for the broker is sent again as a compact record (:func:`compact`); anything
  else is :class:`PublishRefused`, which the caller does not retry.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, errors
from aiokafka.partitioner import murmur2

from stream.messages import OutboundColumns

Header = tuple[tuple[str, bytes], ...]
Record = tuple[bytes | None, bytes | None, Header]
COMPACT_HEAD_BYTES = 4096
# A broker's default limit is 1 MiB a record batch; headers and framing must fit beside the value.
DEFAULT_RECORD_LIMIT = 1_000_000
PERMANENT = (errors.TopicAuthorizationFailedError, errors.ClusterAuthorizationFailedError,
             errors.InvalidTopicError, errors.PolicyViolationError, errors.UnsupportedVersionError,
             errors.InvalidRequiredAcksError)
TOO_LARGE = (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError)


class PublishIncomplete(Exception):  # noqa: N818 - a state the caller retries
    """Some records were not acknowledged; ``remaining`` holds exactly those."""

    def __init__(self, remaining: list[OutboundColumns], cause: BaseException) -> None:
        super().__init__(f"{sum(len(r) for r in remaining)} records not delivered: "
                         f"{type(cause).__name__}: {cause}")
        self.remaining = remaining


class PublishRefused(Exception):
    """The broker refuses these records for good: the worker cannot go on without a fix."""


def record_size(key: bytes | None, value: bytes | None, headers: Header) -> int:
    return (len(key or b"") + len(value or b"")
            + sum(len(k) + len(v) for k, v in headers) + 64)  # 64: record framing, generously


def compact(key: bytes | None, value: bytes | None, headers: Header) -> Record:
    """A dead letter that cannot travel whole: its first bytes, and headers that say so (the
    original size and sha256, so the original can be found and checked upstream)."""
    original = value or b""
    marks = (("dlq.truncated", b"true"), ("dlq.original_size", str(len(original)).encode()),
             ("dlq.sha256", hashlib.sha256(original).hexdigest().encode()))
    kept = tuple((k, v[:2000]) for k, v in headers if not k.startswith("dlq.truncated"))
    return (key or b"")[:1024], original[:COMPACT_HEAD_BYTES], kept + marks


class KafkaBatchPublisher:
    def __init__(self, bootstrap: str, request_size: int = 4 << 20,
                 record_limit: int = DEFAULT_RECORD_LIMIT,
                 client_options: dict[str, Any] | None = None,
                 producer_factory: Any = AIOKafkaProducer) -> None:
        self.bootstrap = bootstrap
        self.request_size = request_size
        self.record_limit = min(record_limit, request_size)
        self.client_options = dict(client_options or {})
        self.producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            # No idempotence: brokers without it (Tansu) refuse the producer; the at-least-once
            # protocol does not need it.
            producer = self.producer_factory(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                linger_ms=0, max_request_size=self.request_size, **self.client_options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            producer = await self._ensure()
            self._partitions[topic] = len(await producer.partitions_for(topic))
        return self._partitions[topic]

    async def _groups(self, records: Sequence[OutboundColumns]) -> list[tuple[str, int, list[Record]]]:
        """(topic, partition, records) in send order; a keyed-by-us column set (dead letters)
        becomes one group per record, each checked against the record limit."""
        grouped: dict[tuple[str, int], list[Record]] = defaultdict(list)
        singles: list[tuple[str, int, list[Record]]] = []
        for columns in records:
            headers = columns.headers or [()] * len(columns)
            partitions = columns.partitions
            if partitions is None:
                n = await self.partitions(columns.topic)
                # dead letters: few, so the pure-Python murmur2 (no numpy in this process)
                partitions = [(murmur2(k or b"") & 0x7FFFFFFF) % n for k in columns.keys]
                for key, value, partition, header in zip(columns.keys, columns.values, partitions,
                                                         headers, strict=True):
                    record = (key, value, header)
                    if record_size(*record) > self.record_limit:
                        record = compact(*record)
                    singles.append((columns.topic, partition, [record]))
                continue
            for key, value, partition, header in zip(columns.keys, columns.values, partitions,
                                                     headers, strict=True):
                grouped[(columns.topic, partition)].append((key, value, header))
        return [(t, p, g) for (t, p), g in grouped.items()] + singles

    async def publish(self, records: Sequence[OutboundColumns]) -> None:
        producer = await self._ensure()
        sent: list[tuple[str, int, list[Record], asyncio.Future | BaseException]] = []

        async def send(topic: str, partition: int, part: list[Record], batch: Any) -> None:
            try:
                sent.append((topic, partition, part,
                             await producer.send_batch(batch, topic, partition=partition)))
            except Exception as exc:  # noqa: BLE001 - this part failed; the others may not
                sent.append((topic, partition, part, exc))

        for topic, partition, group in await self._groups(records):
            part: list[Record] = []
            batch = producer.create_batch()
            for record in group:
                key, value, header = record
                if batch.append(key=key, value=value, timestamp=None, headers=list(header)) is None:
                    await send(topic, partition, part, batch)  # full: shipped, start the next
                    part, batch = [], producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None, headers=list(header))
                part.append(record)
            await send(topic, partition, part, batch)
        futures = [f for *_, f in sent if isinstance(f, asyncio.Future)]
        results = iter(await asyncio.gather(*futures, return_exceptions=True))
        failed = []
        for topic, partition, part, future in sent:
            outcome = next(results) if isinstance(future, asyncio.Future) else future
            if isinstance(outcome, BaseException):
                failed.append((topic, partition, part, outcome))
        if failed:
            self._partitions.clear()  # partition counts may have changed; look them up again
            raise self._classify(failed)

    @staticmethod
    def _classify(failed: list[tuple[str, int, list[Record], BaseException]]) -> Exception:
        remaining: list[OutboundColumns] = []
        for topic, partition, part, exc in failed:
            if isinstance(exc, PERMANENT):
                return PublishRefused(f"the broker refuses records for topic {topic!r}: "
                                      f"{type(exc).__name__}: {exc}")
            if isinstance(exc, TOO_LARGE):
                truncated = all(dict(h).get("dlq.truncated") for _, _, h in part)
                if len(part) > 1 or truncated or not any(k == "dlq.reason" for k, _ in part[0][2]):
                    return PublishRefused(f"the broker refuses a record batch of topic {topic!r} as "
                                          f"too large ({type(exc).__name__}: {exc})")
                part = [compact(*part[0])]  # a dead letter: it travels compact
            remaining.append(OutboundColumns(topic, [k for k, _, _ in part], [v for _, v, _ in part],
                                             [partition] * len(part), [h for _, _, h in part]))
        return PublishIncomplete(remaining, failed[0][3])

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
