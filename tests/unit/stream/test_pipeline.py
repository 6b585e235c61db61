"""The commit protocol (stream/pipeline.py) with fakes and no broker, as Quix Streams tests its
checkpoint: write → publish → ack, in order, with batches in flight; a failed batch holds back
later acks; shutdown leaves what is not acked unacked."""

from __future__ import annotations

import asyncio

import pytest

from shared.kafka_io import PublishIncomplete, PublishRefused
from stream.boundary import (
    DeadLetter,
    Housekeeping,
    MicroBatch,
    ModelStatus,
    OutboundRecords,
    ScoringOutcome,
    ScoringProcessRestarted,
    SinkUnavailable,
)
from stream.pipeline import Pipeline, PipelineConfig
from stream.worker_metrics import WorkerMetrics

CONFIG = PipelineConfig("scores", "dlq", batch_size=10, batches_in_flight=2, retry_max_delay=0.01,
                        cluster_member_wait=0.3, member_poll=0.02, model_poll_interval=60,
                        ping_interval=60)


def _batch(topic: str, first: int, n: int) -> MicroBatch:
    offsets = list(range(first, first + n))
    return MicroBatch(topic, [str(o).encode() for o in offsets], [b"v"] * n, [0] * n, offsets,
                        [None] * n)


class Journal:
    """One ordered record of what happened to which offsets."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, tuple[int, ...]]] = []

    def add(self, what: str, offsets) -> None:  # noqa: ANN001
        self.entries.append((what, tuple(offsets)))

    def acked(self) -> list[int]:
        return [o for what, offsets in self.entries if what == "ack" for o in offsets]

    def steps(self, offset: int) -> list[str]:
        return [what for what, offsets in self.entries if offset in offsets]


class FakeScorer:
    """Writes (in the journal) and answers; ``hold`` pauses it, ``failures`` makes the next
    calls fail as an unavailable sink would, ``pending_until`` keeps clusters waiting."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.hold = asyncio.Event()
        self.hold.set()
        self.failures: list[BaseException] = []
        self.calls: list[tuple[str, int, bool]] = []
        self.members_arrive_after = 0  # cluster calls answered "pending" before that many calls
        self.housekept: list[tuple[float, frozenset]] = []
        self.ping_error: str | None = None

    async def process(self, request):  # noqa: ANN001, ANN201
        await self.hold.wait()
        self.calls.append((request.kind, len(request.batch), request.final))
        if self.failures:
            raise self.failures.pop(0)
        if request.kind == "cluster" and not request.final and self.members_arrive_after > 0:
            self.members_arrive_after -= 1
            return ScoringOutcome("cluster", members_pending=True)
        self.journal.add("write", request.batch.offsets)
        batch = request.batch
        scores = OutboundRecords("scores", list(batch.keys), list(batch.values), [0] * len(batch))
        dead = [DeadLetter(batch.message(0), "schema_violation", "x")] if batch.values[0] == b"bad" else []
        return ScoringOutcome(request.kind, scored=len(batch) - len(dead), scores=scores, dead=dead)

    async def housekeeping(self, due):  # noqa: ANN001, ANN201
        self.housekept.append((asyncio.get_running_loop().time(), due))
        return Housekeeping(ModelStatus("v1", ("ethereum",), 0), drift={"rows": len(self.housekept)}
                            if "drift" in due else None, sink_error=self.ping_error if "ping" in due else None)


class FakePublisher:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.failures = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.slow: set[int] = set()  # a publish holding one of these offsets waits for the gate
        self.published: list[OutboundRecords] = []

    async def partitions(self, topic: str) -> int:
        return 1

    async def publish(self, records) -> None:  # noqa: ANN001
        offsets = {int(k) for r in records for k in r.keys}
        if not self.slow or offsets & self.slow:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.published += records
        self.journal.add("publish", [int(k) for r in records if r.topic == "scores" for k in r.keys])


class Harness:
    def __init__(self, config: PipelineConfig = CONFIG) -> None:
        self.journal = Journal()
        self.scorer = FakeScorer(self.journal)
        self.publisher = FakePublisher(self.journal)
        self.fatal: list[BaseException] = []
        self.metrics = WorkerMetrics()
        self.pipeline = Pipeline(self.scorer, self.publisher, config, self.metrics, self.fatal.append)

    async def ack(self, events) -> None:  # noqa: ANN001
        self.journal.add("ack", events)

    async def submit(self, kind: str, first: int, n: int, topic: str = "alerts") -> None:
        batch = _batch(topic, first, n)
        await self.pipeline.submit(kind, batch.offsets, batch, self.ack)


async def until(condition, timeout: float = 3.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def run(coro) -> None:  # noqa: ANN001
    asyncio.run(asyncio.wait_for(coro, 20))


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


def test_housekeeping_is_one_call_between_micro_batches_each_kind_on_its_own_interval():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=10, retry_max_delay=0.01,
                                   model_poll_interval=0.1, ping_interval=0.15, drift_interval=0.25,
                                   decisions_interval=10))
        h.scorer.ping_error = "ClickHouse went away"
        h.pipeline.start()
        await asyncio.sleep(0.6)
        kinds = [due for _, due in h.scorer.housekept]
        assert kinds[0] == {"decisions"}  # at start: the figures the gauges show
        assert sum("decisions" in d for d in kinds) == 1  # next due in 10 s
        assert 4 <= sum("model" in d for d in kinds) <= 7
        assert 1 <= sum("drift" in d for d in kinds) <= 3
        assert any("ping" in d for d in kinds)  # idle: is the store still there?
        assert h.pipeline.sink_error == "ClickHouse went away" and h.pipeline.observed.drift
        h.scorer.ping_error = None
        await until(lambda: h.pipeline.sink_error is None)
        # /drift wants fresher figures than the interval gives: one call brings them
        calls = len(h.scorer.housekept)
        drift = await h.pipeline.fresh_drift(max_age=0.0)
        assert drift == {"rows": len(h.scorer.housekept)} and len(h.scorer.housekept) > calls
        await h.pipeline.stop()
    run(scenario())


def test_housekeeping_never_pings_a_store_that_just_answered():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=10, retry_max_delay=0.01,
                                   model_poll_interval=60, ping_interval=0.2))
        h.pipeline.start()
        for first in range(0, 200, 5):  # a steady trickle: never idle for 0.2 s
            await h.submit("alert", first, 5)
            await asyncio.sleep(0.02)
        assert not any("ping" in due for _, due in h.scorer.housekept)
        await h.pipeline.stop()
    run(scenario())


def test_behind_the_broker_a_lane_fills_whole_micro_batches_and_keeping_up_sends_at_once():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=10, batches_in_flight=4,
                                   retry_max_delay=0.01, model_poll_interval=60, ping_interval=60,
                                   fill_wait=5.0))
        waiting = {"alerts": 100}
        h.pipeline.waiting_in_broker = lambda topic: waiting[topic]
        h.pipeline.start()
        for first in range(0, 9, 3):  # 9 events: one short of a micro-batch, more in the broker
            await h.submit("alert", first, 3)
        await asyncio.sleep(0.1)
        assert h.scorer.calls == []  # waiting to fill
        await h.submit("alert", 9, 3)  # 12 pending: a full micro-batch (9; 12 would exceed 10) goes
        await until(lambda: len(h.journal.acked()) == 9)
        await asyncio.sleep(0.1)
        assert [n for _, n, _ in h.scorer.calls] == [9]  # the other 3 wait to fill
        waiting["alerts"] = 0  # caught up: what is pending goes at once
        await h.submit("alert", 12, 2)
        await until(lambda: len(h.journal.acked()) == 14)
        assert [n for _, n, _ in h.scorer.calls] == [9, 5] and h.journal.acked() == list(range(14))
        await h.pipeline.stop()
    run(scenario())


def test_a_lane_filling_behind_the_broker_waits_no_longer_than_the_fill_wait():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=10, retry_max_delay=0.01,
                                   model_poll_interval=60, ping_interval=60, fill_wait=0.2))
        h.pipeline.waiting_in_broker = lambda topic: 1_000_000  # (a broker that says so wrongly)
        h.pipeline.start()
        started = asyncio.get_running_loop().time()
        await h.submit("alert", 0, 2)
        await until(lambda: h.journal.acked() == [0, 1])
        assert 0.15 <= asyncio.get_running_loop().time() - started < 1.0
        await h.pipeline.stop()
    run(scenario())


def test_micro_batches_are_cut_by_bytes_a_larger_event_alone():
    batch = MicroBatch("alerts", [None] * 5, [b"x" * 40, b"x" * 40, b"x" * 150, None, b"x" * 60],
                       [0] * 5, list(range(5)), [None] * 5)
    assert batch.nbytes == 290
    assert batch.spans(100) == [(0, 2), (2, 3), (3, 5)]
    assert batch.spans(1000) == [(0, 5)]
    part = batch.slice(3, 5)
    assert (part.offsets, part.values, part.nbytes) == ([3, 4], [None, b"x" * 60], 60)


def test_envelopes_large_takes_are_scored_in_micro_batches_bounded_by_bytes_and_all_acked_in_order():
    async def scenario() -> None:
        h = Harness(PipelineConfig("scores", "dlq", batch_size=100, batches_in_flight=2, batch_max_bytes=1000,
                                   retry_max_delay=0.01, model_poll_interval=60, ping_interval=60))
        h.scorer.hold.clear()
        h.pipeline.start()
        offsets = list(range(30))  # one take of 30 envelopes of 300 bytes: 9,000 bytes
        batch = MicroBatch("alerts", [str(o).encode() for o in offsets], [b"e" * 300] * 30,
                           [0] * 30, offsets, [None] * 30)
        taking = asyncio.ensure_future(h.pipeline.submit("alert", offsets, batch, h.ack))
        await asyncio.sleep(0.05)
        # back-pressure by bytes: at most 2 × 1,000 bytes unacked, though 30 events < 2 × 100
        assert h.pipeline.lanes["alert"].unacked_bytes <= 2000 and not taking.done()
        h.scorer.hold.set()
        await asyncio.wait_for(taking, 2)
        await until(lambda: len(h.journal.acked()) == 30)
        assert [n for _, n, _ in h.scorer.calls] == [3] * 10  # 3 × 300 ≤ 1,000 bytes a call
        assert h.journal.acked() == offsets
        assert h.pipeline.lanes["alert"].unacked_bytes == 0
        await h.pipeline.stop()
    run(scenario())
