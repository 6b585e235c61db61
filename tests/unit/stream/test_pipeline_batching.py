"""How the pipeline cuts micro-batches (natural batching, filling behind the broker, the bound in
bytes) and how its housekeeping reaches the scoring process between them; with fakes, no broker."""

from __future__ import annotations

import asyncio

from stream.boundary import MicroBatch
from stream.pipeline import PipelineConfig
from tests.unit.stream.pipeline_fakes import Harness, run, until


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
        assert h.pipeline.sink_error == "ClickHouse went away" and h.pipeline.housekeeping.observed.drift
        h.scorer.ping_error = None
        await until(lambda: h.pipeline.sink_error is None)
        # /drift wants fresher figures than the interval gives: one call brings them
        calls = len(h.scorer.housekept)
        drift = await h.pipeline.housekeeping.fresh_drift(max_age=0.0)
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
