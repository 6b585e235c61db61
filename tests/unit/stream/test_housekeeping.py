"""Which periodic calls into the scoring process are due when, on a clock the test moves."""

from __future__ import annotations

import asyncio

from stream.boundary import Housekeeping, ModelStatus
from stream.housekeeping import HousekeepingSchedule, Intervals
from stream.worker_metrics import WorkerMetrics

INTERVALS = Intervals(model_poll=5, ping=3, drift=15, decisions=60)
MODEL = ModelStatus("v1", ("ethereum",), 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule() -> tuple[HousekeepingSchedule, Clock, asyncio.Event]:
    clock, wake = Clock(), asyncio.Event()
    return HousekeepingSchedule(INTERVALS, WorkerMetrics(), wake, clock), clock, wake


def test_decisions_at_once_then_each_kind_on_its_own_interval_from_its_last_call():
    hk, clock, _ = schedule()
    assert hk.due() == {"decisions"}
    hk.calling(hk.due())
    assert hk.due() == frozenset() and hk.next_due() == 1003  # the idle ping is next
    clock.now = 1003
    hk.store_answered()  # a micro-batch was written: the store answered, no ping
    clock.now = 1005
    assert hk.due() == {"model"}
    hk.calling(hk.due())
    assert hk.next_due() == 1006  # the ping: 3 s after the store's last answer
    clock.now = 1006
    assert hk.due() == {"ping"}
    hk.calling(hk.due())
    hk.answered(Housekeeping(MODEL), frozenset({"ping"}))  # the ping's answer restarts the idle time
    assert hk.due() == frozenset() and hk.next_due() == 1009
    clock.now = 1015
    assert hk.due() == {"model", "drift", "ping"}
    hk.calling(hk.due())
    assert hk.due() == {"ping"} and hk.next_due() <= clock.now  # only an answer resets the idle time
    clock.now = 1060
    assert "decisions" in hk.due()


def test_a_fresh_drift_wakes_the_dispatcher_and_returns_what_the_next_call_brings():
    async def scenario() -> None:
        hk, clock, wake = schedule()
        hk.calling(hk.due())
        waiting = asyncio.ensure_future(hk.fresh_drift(max_age=0.0))
        await asyncio.sleep(0)
        assert wake.is_set() and hk.due() == {"drift"}  # wanted now, though not due for 15 s
        hk.calling(hk.due())
        hk.answered(Housekeeping(MODEL, drift={"rows": 7}), frozenset({"drift"}))
        assert await waiting == {"rows": 7}
        assert hk.due() == frozenset() and hk.observed.drift == {"rows": 7}
        wake.clear()
        assert await hk.fresh_drift(max_age=60.0) == {"rows": 7} and not wake.is_set()  # fresh enough
    asyncio.run(scenario())


def test_a_fresh_drift_that_does_not_come_in_time_returns_the_last_figures():
    async def scenario() -> None:
        hk, _, _ = schedule()
        hk.answered(Housekeeping(MODEL, drift={"rows": 1}), frozenset({"drift"}))
        hk.observed.drift_at = 0.0  # long ago
        assert await hk.fresh_drift(max_age=1.0, timeout=0.05) == {"rows": 1}
    asyncio.run(scenario())
