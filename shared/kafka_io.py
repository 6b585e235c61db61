"""Kafka helpers every part uses: create topics, produce in confirmed batches, read a topic from
the beginning. The worker consumes through Faust and produces through :class:`BatchPublisher`;
replay, the DLQ tools, the demo, tests and benchmarks produce through :func:`publish`, which
uses the same publisher.

:class:`BatchPublisher` returns once the broker has acknowledged every record (acks=all), or
raises. Records are appended to one record batch per partition (aiokafka's batch API), which
costs a fraction of a ``send()`` per record. Records come with their partition chosen by whoever
knows the rule (the worker's scoring process, by key, like the Java client); a record without
one (-1) is partitioned by the client's default partitioner. Failures are of two kinds:

- transient (a broker away, a leader moving): :class:`PublishIncomplete` names the records not
  yet acknowledged, and the caller retries only those — what was delivered is never sent again;
- permanent (authorization, an invalid topic, a record too large): retrying cannot help. A dead
  letter too large for the broker is sent again as a compact record (:func:`compact`); anything
  else is :class:`PublishRefused`, which the caller does not retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from shared.outbound import Header, OutboundRecords

Record = tuple[str, bytes, bytes]  # topic, key, value
Options = Mapping[str, Any] | None  # client security (shared.kafka_security), none for PLAINTEXT
Entry = tuple[bytes | None, bytes | None, Header]
COMPACT_HEAD_BYTES = 4096
# A broker's default limit is 1 MiB a record batch; headers and framing must fit beside the value.
DEFAULT_RECORD_LIMIT = 1_000_000
RECORD_BATCH_BYTES = 512 << 10  # a record batch per partition and call, well under that limit
PERMANENT = (errors.TopicAuthorizationFailedError, errors.ClusterAuthorizationFailedError,
             errors.InvalidTopicError, errors.PolicyViolationError, errors.UnsupportedVersionError,
             errors.InvalidRequiredAcksError)
TOO_LARGE = (errors.MessageSizeTooLargeError, errors.RecordListTooLargeError)


class PublishIncomplete(Exception):  # noqa: N818 - a state the caller retries
    """Some records were not acknowledged; ``remaining`` holds exactly those."""

    def __init__(self, remaining: list[OutboundRecords], cause: BaseException) -> None:
        super().__init__(f"{sum(len(r) for r in remaining)} records not delivered: "
                         f"{type(cause).__name__}: {cause}")
        self.remaining = remaining


class PublishRefused(Exception):
    """The broker refuses these records for good: the worker cannot go on without a fix."""


def record_size(key: bytes | None, value: bytes | None, headers: Header) -> int:
    return (len(key or b"") + len(value or b"")
            + sum(len(k) + len(v) for k, v in headers) + 64)  # 64: record framing, generously


def compact(key: bytes | None, value: bytes | None, headers: Header) -> Entry:
    """A dead letter that cannot travel whole: its first bytes, and headers that say so (the
    original size and sha256, so the original can be found and checked upstream)."""
    original = value or b""
    marks = (("dlq.truncated", b"true"), ("dlq.original_size", str(len(original)).encode()),
             ("dlq.sha256", hashlib.sha256(original).hexdigest().encode()))
    kept = tuple((k, v[:2000]) for k, v in headers if not k.startswith("dlq.truncated"))
    return (key or b"")[:1024], original[:COMPACT_HEAD_BYTES], kept + marks


class BatchPublisher:
    def __init__(self, bootstrap: str, request_size: int = 4 << 20,
                 record_limit: int = DEFAULT_RECORD_LIMIT,
                 client_options: Options = None,
                 producer_factory: Any = AIOKafkaProducer) -> None:
        self.bootstrap = bootstrap
        self.request_size = request_size
        self.record_limit = min(record_limit, request_size)
        self.client_options = dict(client_options or {})
        self.producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()  # callers in parallel share one producer
        self._partitioner = DefaultPartitioner()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._starting:
            return await self._start()

    async def _start(self) -> AIOKafkaProducer:
        if self._producer is None:
            # No idempotence: brokers without it (Tansu) refuse the producer; the at-least-once
            # protocol does not need it. Metadata at most 30 s old: partitions added to a topic
            # are used within that.
            producer = self.producer_factory(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                linger_ms=0, max_batch_size=min(RECORD_BATCH_BYTES, self.request_size),
                max_request_size=self.request_size, metadata_max_age_ms=30_000,
                **self.client_options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def partitions(self, topic: str) -> int:
        """The topic's partition count, from the client's metadata (refreshed as it ages)."""
        producer = await self._ensure()
        return len(await producer.partitions_for(topic))

    async def _groups(self, records: Sequence[OutboundRecords]) -> list[tuple[str, int, list[Entry]]]:
        """(topic, partition, records) in send order. Records without a partition get the
        client's default; ``one_per_batch`` records (dead letters) each go in a batch of their
        own, checked against the record limit."""
        grouped: dict[tuple[str, int], list[Entry]] = defaultdict(list)
        singles: list[tuple[str, int, list[Entry]]] = []
        for columns in records:
            headers = columns.headers or [()] * len(columns)
            partitions = columns.partitions or [-1] * len(columns)
            if any(p < 0 for p in partitions):
                all_partitions = list(range(await self.partitions(columns.topic)))
                partitions = [p if p >= 0 else self._partitioner(k, all_partitions, all_partitions)
                              for p, k in zip(partitions, columns.keys, strict=True)]
            for key, value, partition, header in zip(columns.keys, columns.values, partitions,
                                                     headers, strict=True):
                record = (key, value, header)
                if columns.one_per_batch:
                    if record_size(*record) > self.record_limit:
                        record = compact(*record)
                    singles.append((columns.topic, partition, [record]))
                else:
                    grouped[(columns.topic, partition)].append(record)
        return [(t, p, g) for (t, p), g in grouped.items()] + singles

    async def publish(self, records: Sequence[OutboundRecords]) -> None:
        producer = await self._ensure()
        sent: list[tuple[str, int, list[Entry], asyncio.Future | BaseException]] = []

        async def send(topic: str, partition: int, part: list[Entry], batch: Any) -> None:
            try:
                sent.append((topic, partition, part,
                             await producer.send_batch(batch, topic, partition=partition)))
            except Exception as exc:  # noqa: BLE001 - this part failed; the others may not
                sent.append((topic, partition, part, exc))

        for topic, partition, group in await self._groups(records):
            part: list[Entry] = []
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
            raise self._classify(failed)

    @staticmethod
    def _classify(failed: list[tuple[str, int, list[Entry], BaseException]]) -> Exception:
        remaining: list[OutboundRecords] = []
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
            remaining.append(OutboundRecords(topic, [k for k, _, _ in part], [v for _, v, _ in part],
                                             [partition] * len(part), [h for _, _, h in part],
                                             one_per_batch=len(part) == 1 and bool(part[0][2])))
        return PublishIncomplete(remaining, failed[0][3])

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


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
    """Produce (topic, key, value) records through :class:`BatchPublisher`, a window at a time
    (a few windows in flight), optionally paced to ``rate`` records per second (then in windows
    of 10 ms). Returns the number of records the broker acknowledged; a failure raises."""
    publisher = BatchPublisher(bootstrap, request_size=max_request_size, client_options=options)
    size = window if not rate else max(1, min(window, int(rate / 100)))
    in_flight: set[asyncio.Task] = set()
    sent = 0

    async def deliver(chunk: list[Record]) -> None:
        by_topic: dict[str, OutboundRecords] = {}
        for topic, key, value in chunk:
            out = by_topic.setdefault(topic, OutboundRecords(topic, partitions=[]))
            out.keys.append(key)
            out.values.append(value)
            out.partitions.append(-1)  # type: ignore[union-attr]
        await publisher.publish(list(by_topic.values()))
        if on_sent:
            on_sent(len(chunk))

    try:
        started = time.monotonic()
        chunk: list[Record] = []
        for record in records:
            chunk.append(record)
            if len(chunk) < size:
                continue
            sent += await _launch(deliver, chunk, in_flight)
            chunk = []
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if chunk:
            sent += await _launch(deliver, chunk, in_flight)
        await asyncio.gather(*in_flight)  # raises the first failure
    finally:
        for task in in_flight:
            task.cancel()
        await publisher.stop()
    return sent


async def _launch(deliver: Callable[[list[Record]], Any], chunk: list[Record],
                  in_flight: set[asyncio.Task], limit: int = 4) -> int:
    """Start delivering ``chunk`` once fewer than ``limit`` deliveries are in flight (tasks
    started in order append their record batches in order: a partition's records stay in order)."""
    while len(in_flight) >= limit:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            in_flight.discard(task)
            task.result()
    task = asyncio.ensure_future(deliver(chunk))
    in_flight.add(task)
    return len(chunk)


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
