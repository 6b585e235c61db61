"""The worker's faust.App, with three behaviours Faust does not expose.

- The consumer's fetch wait: Faust hard-codes ``fetch_max_wait_ms=1500``. Kafka answers a fetch
  as soon as data is there, so that only bounds idle polls; a broker that holds every fetch for
  the full wait (Tansu does: measured p50 368 ms at 1500 against 4 ms at 10) adds it to every
  event's latency.
- Stopping: Faust's stop first waits for every consumed event to be acknowledged, then signals
  ``on_before_shutdown``. A batch stuck on an unavailable store is never acknowledged, so that
  wait never ends (seen: SIGTERM ignored for minutes). ``before_stop`` runs first instead; after
  it, unacknowledged events are left so on purpose (they are redelivered), and not waited for.
  Rebalances still wait for them, so no offset is committed for a partition another worker owns.
- The stream buffer's bound in bytes (``stream_buffer_max_bytes``): :mod:`stream.stream_buffer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT
from mode.utils.queues import ThrowableQueue

from stream.stream_buffer import ByteBoundedQueue


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202 - faust signature
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its Fetcher; set before start.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """A faust.App whose consumer fetch wait is ``fetch_max_wait_ms``, whose stream buffers hold
    at most ``stream_buffer_max_bytes`` of message values (0: no bound in bytes), and whose stop
    runs ``before_stop`` and then abandons unacknowledged events."""

    fetch_max_wait_ms: int = 1500
    stream_buffer_max_bytes: int = 0
    before_stop: Callable[[], Awaitable[None]] | None = None
    _abandon_unacked = False

    def FlowControlQueue(self, maxsize: int | None = None, *,  # noqa: N802 - faust's name
                         clear_on_resume: bool = False) -> ThrowableQueue:
        if not self.stream_buffer_max_bytes:
            return super().FlowControlQueue(maxsize, clear_on_resume=clear_on_resume)
        return ByteBoundedQueue(maxsize=maxsize, flow_control=self.flow_control,
                                clear_on_resume=clear_on_resume, max_bytes=self.stream_buffer_max_bytes)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        self._abandon_unacked = True
        await super().on_stop()

    async def _consumer_wait_empty(self, consumer, logger) -> None:  # noqa: ANN001 - faust's
        if not self._abandon_unacked:
            await super()._consumer_wait_empty(consumer, logger)
