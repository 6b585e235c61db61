"""Faust's aiokafka transport with one setting it does not expose: the consumer's fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500``. Kafka answers a fetch as soon as data is there, so
that only bounds idle polls; a broker that holds every fetch for the full wait (Tansu does:
measured p50 368 ms at 1500 against 4 ms at 10) adds it to every event's latency.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


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
    """A faust.App whose consumer fetch wait is ``fetch_max_wait_ms``."""

    fetch_max_wait_ms: int = 1500

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
