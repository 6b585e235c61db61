"""The scoring process's supervision and its pipe protocol, with a fake service in a real child
process (no broker, no ClickHouse): answers in order, errors carried back, a dead child replaced,
a child that keeps dying ends it, and the late answer to a cancelled call never taken for the
next call's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest

from stream.boundary import (
    Inbound,
    ScoringProcessRestarted,
    ScoringRequest,
    SinkUnavailable,
)
from stream.scoring_supervisor import ScoringProcess, ScoringProcessFailed
from tests.unit.stream.batches import micro_batch

FAKE = "tests.unit.stream.fake_scoring_service:FakeScoringService"


def request(kind: str, n: int = 3) -> ScoringRequest:
    messages = [Inbound(b"k", b"{}", "aml.alerts", 0, i) for i in range(n)]
    return ScoringRequest(kind, micro_batch(messages), {"aml.alert-scores": 4, "aml.alerts.dlq": 4})


@pytest.fixture
def scorer():
    process = ScoringProcess(service=FAKE, max_restarts=2)
    process.start()
    yield process
    process.stop(grace=0.5)


def test_calls_are_answered_and_errors_come_back_as_raised(scorer):
    async def run():
        assert (await scorer.process(request("alert", 5))).scored == 5
        with pytest.raises(SinkUnavailable, match="ClickHouse is down"):
            await scorer.process(request("fail"))
        assert (await scorer.process(request("alert", 2))).scored == 2
    asyncio.run(run())
    assert scorer.status.version == "fake-v1"


def test_the_scoring_process_is_the_only_child_and_holds_only_its_pipes(scorer):
    """No helper process beside it (multiprocessing's resource tracker: 12 MB for nothing the
    worker uses), and none of this process's other descriptors (sockets, files) leak into it."""
    children = {int(pid) for task in Path("/proc/self/task").iterdir()
                for pid in (task / "children").read_text().split()}
    assert children == {scorer.pid}
    descriptors = {int(fd.name) for fd in Path(f"/proc/{scorer.pid}/fd").iterdir()}
    sockets = [fd for fd in descriptors
               if os.readlink(f"/proc/{scorer.pid}/fd/{fd}").startswith("socket:")]
    assert len(sockets) == 2  # the calls pipe and the reads pipe


def test_a_dead_child_is_replaced_and_one_that_keeps_dying_ends_it(scorer):
    first = scorer.pid

    async def run():
        with pytest.raises(ScoringProcessRestarted):
            await scorer.process(request("die"))
        assert scorer.pid != first and len(scorer.restarts) == 1
        assert (await scorer.process(request("alert", 4))).scored == 4
        with pytest.raises(ScoringProcessRestarted):
            await scorer.process(request("die"))
        with pytest.raises(ScoringProcessFailed, match="died 3 times"):
            await scorer.process(request("die"))
        with pytest.raises(ScoringProcessFailed):
            await scorer.process(request("alert"))
    asyncio.run(run())
    assert scorer.failed


def test_the_late_answer_to_a_cancelled_call_is_not_the_next_calls(scorer):
    async def run():
        slow = asyncio.ensure_future(scorer.process(request("slow", 7)))
        await asyncio.sleep(0.1)
        slow.cancel()
        assert (await scorer.process(request("alert", 1))).kind == "alert"
    asyncio.run(run())


def test_a_child_that_cannot_start_fails_start_with_its_error(monkeypatch):
    monkeypatch.setenv("FAKE_SCORING_FAILS_AT_START", "1")
    process = ScoringProcess(service=FAKE)
    with pytest.raises(SinkUnavailable, match="ClickHouse is down"):
        process.start()


def test_reads_are_answered_beside_a_batch_bounded_in_number_and_time():
    from shared.read_api import ReadRequest
    from stream.scoring_supervisor import ReadsBusy, ReadTimedOut

    process = ScoringProcess(service=FAKE, max_reads=2, read_timeout=0.5)
    process.start()

    async def run():
        batch = asyncio.ensure_future(process.process(request("slow", 2)))  # 0.5 s in the child
        await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        answer = await process.read(ReadRequest(what="alert", alert_id="a1"))
        assert orjson.loads(answer) == {"what": "alert", "alert_id": "a1"}
        assert asyncio.get_running_loop().time() - started < 0.3  # not behind the batch
        slow = [asyncio.ensure_future(process.read(ReadRequest(what="alert", alert_id="slow")))
                for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ReadsBusy):  # a third one while two are in flight: refused at once
            await process.read(ReadRequest(what="alert", alert_id="a2"))
        for task in slow:
            with pytest.raises(ReadTimedOut):
                await task
        assert process.reads_in_flight == 0
        assert (await batch).scored == 2
    try:
        asyncio.run(run())
    finally:
        process.stop(grace=0.5)



@pytest.mark.parametrize("added", [None, 0, 7, 15])
def test_the_scoring_process_runs_below_the_faust_process_and_its_reads_below_it(added):
    """Every thread of the scoring process, those the service starts as it is built among them,
    adds AMLSCORE_SCORING_NICE (default 5) to the Faust process's niceness; its read threads add
    10 more; both capped at 19. A thread the service raised above that (as the embedded engine
    does where it may) is put back once the service is built."""
    from shared.read_api import ReadRequest

    own = os.getpriority(os.PRIO_PROCESS, 0)
    process = ScoringProcess({} if added is None else {"scoring_nice": added}, service=FAKE)
    process.start()
    try:
        seen = orjson.loads(asyncio.run(process.read(ReadRequest(what="alert", alert_id="niceness"))))
        every_thread = {int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
                        for task in Path(f"/proc/{process.pid}/task").iterdir()}
    finally:
        process.stop(grace=0.5)
    scoring = min(19, own + (5 if added is None else added))
    reads = min(19, scoring + 10)
    assert seen == {"main": scoring, "engine": scoring, "raised": scoring, "read": reads}
    assert every_thread <= {scoring, reads}
