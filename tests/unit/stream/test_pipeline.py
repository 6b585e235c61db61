"""The commit protocol (stream/pipeline.py) with fakes and no broker, as Quix Streams tests its
checkpoint: write → publish → ack, in order, with batches in flight; a failed batch holds back
later acks; shutdown leaves what is not acked unacked."""

from __future__ import annotations

import asyncio

import pytest

from shared.kafka_io import PublishIncomplete, PublishRefused
from stream.boundary import (
    MicroBatch,
    OutboundRecords,
    ScoringProcessRestarted,
    SinkUnavailable,
)
from stream.pipeline import PipelineConfig
from tests.unit.stream.pipeline_fakes import Harness, run, until


def test_every_event_is_written_then_published_then_acked_in_order():
    async def scenario() -> None:
        h = Harness()
        h.pipeline.start()
        for first in range(0, 60, 5):
            await h.submit("alert", first, 5)
        await until(lambda: len(h.journal.acked()) == 60)
        assert h.journal.acked() == list(range(60))
        for offset in range(60):
            assert h.journal.steps(offset) == ["write", "publish", "ack"]
        assert not h.fatal
        await h.pipeline.stop()
    run(scenario())


def test_a_batch_is_scored_while_the_previous_one_is_published_but_acked_after_it():
    async def scenario() -> None:
        h = Harness()
        h.pipeline.start()
        h.publisher.gate.clear()  # the broker is slow for the first batch only
        h.publisher.slow = {0}
        await h.submit("alert", 0, 10)
        await until(lambda: h.journal.steps(0) == ["write"])
        await h.submit("alert", 10, 10)
        await until(lambda: h.journal.steps(10) == ["write"])  # scored meanwhile: pipelined
        await asyncio.sleep(0.05)
        # ... but published and acked only after the first, though its own publish is quick
        assert h.journal.acked() == [] and h.journal.steps(10) == ["write"]
        h.publisher.gate.set()
        await until(lambda: len(h.journal.acked()) == 20)
        assert h.journal.acked() == list(range(20))
        await h.pipeline.stop()
    run(scenario())


def test_pending_chunks_are_merged_into_one_call_up_to_the_batch_size():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=10, batches_in_flight=4,
                                   retry_max_delay=0.01, model_poll_interval=60, ping_interval=60))
        h.scorer.hold.clear()
        h.pipeline.start()
        await h.submit("alert", 0, 2)
        await asyncio.sleep(0.02)  # the first call is under way (held)
        for first in range(2, 20, 3):
            await h.submit("alert", first, 3)
        h.scorer.hold.set()
        await until(lambda: len(h.journal.acked()) == 20)
        assert [n for _, n, _ in h.scorer.calls] == [2, 9, 9]  # natural batching, never above 10
        assert h.journal.acked() == list(range(20))
        await h.pipeline.stop()
    run(scenario())


def test_an_unavailable_sink_is_retried_and_nothing_is_acked_meanwhile():
    async def scenario() -> None:
        h = Harness()
        h.scorer.failures = [SinkUnavailable("ClickHouse down")] * 5 + [ScoringProcessRestarted("x")]
        h.pipeline.start()
        await h.submit("alert", 0, 4)
        await until(lambda: len(h.scorer.calls) >= 3)
        assert h.journal.acked() == [] and h.pipeline.sink_error == "ClickHouse down"
        await until(lambda: h.journal.acked() == [0, 1, 2, 3])
        assert h.pipeline.sink_error is None and len(h.scorer.calls) == 7
        assert h.metrics.sink_failures._value.get() == 5
        await h.pipeline.stop()
    run(scenario())


def test_a_failed_publish_is_retried_before_anything_is_acked():
    async def scenario() -> None:
        h = Harness()
        h.publisher.failures = 3
        h.pipeline.start()
        await h.submit("alert", 0, 4)
        await h.submit("alert", 4, 4)
        await until(lambda: len(h.journal.acked()) == 8)
        assert h.journal.acked() == list(range(8))
        assert all(h.journal.steps(o) == ["write", "publish", "ack"] for o in range(8))
        assert h.metrics.publish_failures._value.get() == 3
        await h.pipeline.stop()
    run(scenario())


def test_stopping_during_an_outage_leaves_the_batch_and_later_ones_unacked():
    async def scenario() -> None:
        h = Harness()
        h.publisher.gate.clear()
        h.pipeline.start()
        await h.submit("alert", 0, 4)
        await until(lambda: h.journal.steps(0) == ["write"])
        h.scorer.failures = [SinkUnavailable("down")] * 1000
        await h.submit("alert", 4, 4)
        await until(lambda: len(h.scorer.calls) >= 3)
        await h.pipeline.stop()
        h.publisher.gate.set()
        await asyncio.sleep(0.05)
        assert h.journal.acked() == []  # not even the first, whose publish never finished
        assert not h.fatal
    run(scenario())


def test_a_full_lane_makes_the_agent_wait_back_pressure():
    async def scenario() -> None:
        h = Harness()  # at most 2 × 10 events unacked per lane
        h.scorer.hold.clear()
        h.pipeline.start()
        await h.submit("alert", 0, 10)
        await h.submit("alert", 10, 10)
        blocked = asyncio.ensure_future(h.submit("alert", 20, 10))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        h.scorer.hold.set()
        await asyncio.wait_for(blocked, 2)
        await until(lambda: len(h.journal.acked()) == 30)
        await h.pipeline.stop()
    run(scenario())


def test_clusters_waiting_for_members_do_not_hold_up_alerts_and_end_with_a_final_call():
    async def scenario() -> None:
        h = Harness()
        h.scorer.members_arrive_after = 10**6  # the members never come
        h.pipeline.start()
        await h.submit("cluster", 0, 3, topic="clusters")
        await until(lambda: len(h.scorer.calls) >= 2)
        await h.submit("alert", 100, 5)
        await until(lambda: h.journal.acked() == [100, 101, 102, 103, 104])
        assert all(h.journal.steps(o) == [] for o in range(3))  # clusters still waiting
        await until(lambda: h.journal.acked()[-3:] == [0, 1, 2])
        cluster_calls = [final for kind, _, final in h.scorer.calls if kind == "cluster"]
        assert cluster_calls[-1] is True and not any(cluster_calls[:-1])
        await h.pipeline.stop()
    run(scenario())


def test_dead_letters_are_published_with_the_scores_and_counted():
    async def scenario() -> None:
        h = Harness()
        h.pipeline.start()
        batch = MicroBatch("alerts", [b"0", b"1"], [b"bad", b"ok"], [0, 0], [0, 1], [None, None])
        await h.pipeline.submit("alert", [0, 1], batch, h.ack)
        await until(lambda: h.journal.acked() == [0, 1])
        dlq = [r for r in h.publisher.published if r.topic == "dlq"]
        assert len(dlq) == 1 and dlq[0].values == [b"bad"]
        assert dict(dlq[0].headers[0])["dlq.reason"] == b"schema_violation"
        text = h.metrics.render().decode()
        assert 'amlscore_dead_lettered_total{reason="schema_violation"} 1.0' in text
        assert 'amlscore_scored_total{kind="alert"} 1.0' in text
        await h.pipeline.stop()
    run(scenario())


@pytest.mark.parametrize("where", ["scorer", "ack"])
def test_an_unexpected_error_ends_the_worker_instead_of_leaving_it_half_alive(where):
    async def scenario() -> None:
        h = Harness()
        if where == "scorer":
            h.scorer.failures = [KeyError("address")]
        else:
            async def broken_ack(events) -> None:  # noqa: ANN001
                raise RuntimeError("ack failed")
            h.ack = broken_ack
        h.pipeline.start()
        await h.submit("alert", 0, 3)
        await until(lambda: bool(h.fatal))
        assert h.journal.acked() == []
        await h.pipeline.stop()
    run(scenario())


def test_a_partial_publish_is_retried_with_only_the_undelivered_records():
    async def scenario() -> None:
        h = Harness()
        calls: list[list[bytes]] = []
        original = h.publisher.publish

        async def partial(records) -> None:  # noqa: ANN001
            calls.append([k for r in records for k in r.keys])
            if len(calls) == 1:  # the first half went through, the rest did not
                half = OutboundRecords("scores", records[0].keys[2:], records[0].values[2:], [0, 0])
                raise PublishIncomplete([half], ConnectionError("leader moved"))
            await original(records)
        h.publisher.publish = partial
        h.pipeline.start()
        await h.submit("alert", 0, 4)
        await until(lambda: h.journal.acked() == [0, 1, 2, 3])
        assert calls == [[b"0", b"1", b"2", b"3"], [b"2", b"3"]]
        await h.pipeline.stop()
    run(scenario())


def test_a_permanent_refusal_ends_the_worker_without_acking_or_retrying():
    async def scenario() -> None:
        h = Harness()
        calls = []

        async def refused(records) -> None:  # noqa: ANN001
            calls.append(records)
            raise PublishRefused("topic 'scores': TopicAuthorizationFailedError")
        h.publisher.publish = refused
        h.pipeline.start()
        await h.submit("alert", 0, 3)
        await until(lambda: bool(h.fatal))
        await asyncio.sleep(0.05)
        assert len(calls) == 1 and h.journal.acked() == []
        assert isinstance(h.fatal[0], PublishRefused)
        await h.pipeline.stop()
    run(scenario())
