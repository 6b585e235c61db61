"""Faust's stream buffer bounded in bytes: full, pressure and its drop by the bytes of the message
values queued, one message always taken, and the worker's app building it."""

import asyncio
from types import SimpleNamespace

from mode.utils.queues import FlowControlEvent

from stream.faust_app import WorkerApp
from stream.stream_buffer import ByteBoundedQueue


def event(size: int) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(value=b"x" * size))


def queue(max_bytes: int = 100, maxsize: int = 1000) -> ByteBoundedQueue:
    flow = FlowControlEvent(initially_suspended=False)
    return ByteBoundedQueue(maxsize=maxsize, flow_control=flow, max_bytes=max_bytes)


def test_full_by_the_bytes_of_the_values_and_free_again_as_they_are_taken():
    async def scenario() -> None:
        q = queue()
        for _ in range(2):
            q.put_nowait(event(40))
        assert (q.bytes, q.full()) == (80, False)
        q.force_put_nowait(event(40))  # Faust's way in
        assert (q.bytes, q.full()) == (120, True)
        assert len((await q.get()).message.value) == 40
        assert (q.bytes, q.full()) == (80, False)
        q.get_nowait()
        q.clear()
        assert (q.bytes, q.qsize(), q.full()) == (0, 0, False)
    asyncio.run(scenario())


def test_an_empty_queue_takes_a_message_larger_than_the_bound():
    q = queue(max_bytes=100)
    assert not q.full()
    q.put_nowait(event(5000))
    assert q.full() and q.qsize() == 1


def test_the_count_bound_still_holds_for_small_messages():
    q = queue(max_bytes=10**9, maxsize=3)
    for _ in range(3):
        q.put_nowait(event(1))
    assert q.full()


def test_a_put_waits_while_the_bytes_are_full_and_goes_on_when_one_is_taken():
    async def scenario() -> None:
        q = queue(max_bytes=100)
        q.put_nowait(event(100))
        waiting = asyncio.ensure_future(q.put(event(10)))
        await asyncio.sleep(0.01)
        assert not waiting.done() and q.qsize() == 1
        await q.get()
        await asyncio.wait_for(waiting, 1)
        assert (q.qsize(), q.bytes) == (1, 10)
    asyncio.run(scenario())


def test_pressure_rises_with_the_bytes_and_drops_only_when_they_are_low():
    async def scenario() -> None:
        q = queue(max_bytes=100)
        high, dropped = [], []

        def put(size: int) -> bool:
            return q.put_nowait_enhanced(event(size), on_pressure_high=lambda: high.append(1),
                                         on_pressure_drop=lambda: dropped.append(1))
        assert [put(30), put(30), put(30)] == [False, False, False]  # 90 queued after the third
        assert put(10) is True and high == [1]  # at 90 >= 100 / 1.25 this partition pauses
        await q.get()  # 70 left: above 100 * 0.4, the partition stays paused
        assert dropped == []
        await q.get()
        q.get_nowait()  # 10 left: low in bytes and in count, the partition fetches again
        assert dropped == [1]
    asyncio.run(scenario())


def test_the_worker_app_builds_byte_bounded_stream_buffers_when_told():
    app = WorkerApp("byte-bound-test", broker="kafka://localhost:1")
    assert type(app.FlowControlQueue(10)) is not ByteBoundedQueue
    app.stream_buffer_max_bytes = 1234
    built = app.FlowControlQueue(10, clear_on_resume=True)
    assert isinstance(built, ByteBoundedQueue) and built.max_bytes == 1234 and built.maxsize == 10
