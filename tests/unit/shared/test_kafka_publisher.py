"""How the batch publisher (shared.kafka_io) classifies produce failures, against a fake producer (no broker): a retry
sends only what was not delivered, an oversize dead letter travels compact, a permanent refusal
is not retried."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from aiokafka import errors

from shared.kafka_io import (
    COMPACT_HEAD_BYTES,
    BatchPublisher,
    OutboundRecords,
    PublishIncomplete,
    PublishRefused,
)
from stream.boundary import DeadLetter, Inbound


class FakeBatch:
    def __init__(self, limit: int) -> None:
        self.limit, self.records, self.size = limit, [], 0

    def append(self, *, key, value, timestamp, headers):  # noqa: ANN001, ANN201
        size = len(key or b"") + len(value or b"")
        if self.records and self.size + size > self.limit:
            return None
        self.records.append((key, value, tuple(headers)))
        self.size += size
        return object()


class FakeProducer:
    """Delivers what ``refuse(topic, partition, records)`` lets through (it returns an error or None)."""

    instances: list[FakeProducer] = []

    def __init__(self, **options) -> None:
        self.options = options
        self.refuse = lambda topic, partition, records: None
        self.delivered: list[tuple[str, int, bytes | None, bytes | None, tuple]] = []
        self.attempts = 0
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        await asyncio.sleep(0.01)  # a real start talks to the broker: others run meanwhile

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(16_384)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future:
        self.attempts += 1
        future = asyncio.get_running_loop().create_future()
        error = self.refuse(topic, partition, batch.records)
        if error is None:
            self.delivered += [(topic, partition, *r) for r in batch.records]
            future.set_result(None)
        else:
            future.set_exception(error)
        return future


def scores(n: int) -> OutboundRecords:
    keys = [f"a{i}".encode() for i in range(n)]
    return OutboundRecords("scores", keys, [b"{}"] * n, [i % 3 for i in range(n)])


def dead(value: bytes) -> OutboundRecords:
    letter = DeadLetter(Inbound(b"k", value, "alerts", 0, 7), "oversize", "too big", partition=0)
    return DeadLetter.records("dlq", [letter])


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_retry_after_a_partial_failure_sends_only_what_was_not_delivered():
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        producer = await pub._ensure()
        down = {"partition": 1}
        producer.refuse = lambda topic, partition, records: (
            errors.KafkaConnectionError("leader away") if partition == down["partition"] else None)
        with pytest.raises(PublishIncomplete) as failure:
            await pub.publish([scores(30), dead(b"bad")])
        remaining = failure.value.remaining
        assert sum(len(r) for r in remaining) == 10  # only partition 1's score events
        assert {p for r in remaining for p in r.partitions} == {1}
        down["partition"] = None
        await pub.publish(remaining)
        keys = [d[2] for d in producer.delivered if d[0] == "scores"]
        assert sorted(keys) == sorted(f"a{i}".encode() for i in range(30))  # each exactly once
        assert [d[3] for d in producer.delivered if d[0] == "dlq"] == [b"bad"]
    run(scenario())


def test_a_dead_letter_too_large_to_send_whole_travels_compact():
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", record_limit=100_000, producer_factory=FakeProducer)
        producer = await pub._ensure()
        original = b"x" * 300_000
        await pub.publish([dead(original)])
        (topic, _, key, value, headers), = producer.delivered
        marks = dict(headers)
        assert topic == "dlq" and key == b"k" and value == original[:COMPACT_HEAD_BYTES]
        assert marks["dlq.truncated"] == b"true" and marks["dlq.reason"] == b"oversize"
        assert marks["dlq.original_size"] == b"300000"
        assert marks["dlq.sha256"] == hashlib.sha256(original).hexdigest().encode()
    run(scenario())


def test_a_dead_letter_the_broker_refuses_as_too_large_is_sent_again_compact():
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        producer = await pub._ensure()
        producer.refuse = lambda topic, partition, records: (
            errors.MessageSizeTooLargeError() if len(records[0][1]) > 10_000 else None)
        with pytest.raises(PublishIncomplete) as failure:
            await pub.publish([scores(5), dead(b"y" * 50_000)])
        (letter,) = failure.value.remaining
        assert letter.values == [b"y" * COMPACT_HEAD_BYTES]
        await pub.publish(failure.value.remaining)
        assert sum(d[0] == "scores" for d in producer.delivered) == 5
        assert [dict(d[4])["dlq.truncated"] for d in producer.delivered if d[0] == "dlq"] == [b"true"]
    run(scenario())


@pytest.mark.parametrize("error", [errors.TopicAuthorizationFailedError(), errors.InvalidTopicError()])
def test_a_permanent_refusal_is_not_something_to_retry(error):
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        producer = await pub._ensure()
        producer.refuse = lambda topic, partition, records: error
        with pytest.raises(PublishRefused, match="scores"):
            await pub.publish([scores(3)])
    run(scenario())


def test_score_events_refused_as_too_large_are_refused_for_good():
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        producer = await pub._ensure()
        producer.refuse = lambda topic, partition, records: errors.MessageSizeTooLargeError()
        with pytest.raises(PublishRefused, match="too large"):
            await pub.publish([scores(1)])
    run(scenario())


def test_records_without_a_partition_get_the_clients_default_and_each_keeps_its_own():
    async def scenario() -> None:
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        producer = await pub._ensure()
        keys = [f"k{i}".encode() for i in range(20)]
        await pub.publish([OutboundRecords("replayed", keys, [b"v"] * 20, [-1] * 20),
                           OutboundRecords("scores", [b"a"], [b"v"], [2])])
        from aiokafka.partitioner import murmur2
        expected = {k: (murmur2(k) & 0x7FFFFFFF) % 3 for k in keys}
        assert {d[2]: d[1] for d in producer.delivered if d[0] == "replayed"} == expected
        assert [d[1] for d in producer.delivered if d[0] == "scores"] == [2]
    run(scenario())


def test_callers_in_parallel_share_one_producer():
    async def scenario() -> None:
        FakeProducer.instances.clear()
        pub = BatchPublisher("fake:9092", producer_factory=FakeProducer)
        await asyncio.gather(*(pub.publish([scores(3)]) for _ in range(4)))
        assert len(FakeProducer.instances) == 1
    run(scenario())
