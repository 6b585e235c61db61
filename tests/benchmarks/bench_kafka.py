"""The benchmarks' Kafka side: the broker a run measures on (a local Tansu, plain or behind TLS,
or a given cluster) and its clients (a batched producer, a paced one that stamps each record as
it is sent, consumers), all with the run's security options."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from amlscore.local_broker import LocalBroker, free_port
from shared.kafka_io import publish
from shared.kafka_security import kafka_security
from shared.settings import load_settings
from stream.memory import freeze_startup_objects

SECURITY_SETTINGS = ("AMLSCORE_KAFKA_SECURITY_PROTOCOL", "AMLSCORE_KAFKA_SASL_MECHANISM",
                     "AMLSCORE_KAFKA_USERNAME", "AMLSCORE_KAFKA_PASSWORD", "AMLSCORE_KAFKA_PASSWORD_FILE",
                     "AMLSCORE_KAFKA_CA_FILE", "AMLSCORE_KAFKA_CERT_FILE", "AMLSCORE_KAFKA_KEY_FILE")
OPTIONS: dict = {}  # aiokafka security options of this run's clients (none on the local broker)


async def produce(bootstrap: str, topic: str, records) -> float:
    """Seconds to publish (key, value) records to ``topic`` (batched, timestamped at send)."""
    started = time.perf_counter()
    await publish(((topic, k, v) for k, v in records), bootstrap, window=10_000,
                  max_request_size=8 << 20, options=OPTIONS)
    return time.perf_counter() - started


async def consume(bootstrap: str, topic: str, n: int, forward: str | None = None) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_poll_records=5000, **OPTIONS)
    producer = None
    if forward:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5,
                                    max_batch_size=1 << 18, **OPTIONS)
        await producer.start()
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batch:
                started = time.perf_counter()
            records = [r for recs in batch.values() for r in recs]
            if producer:
                await asyncio.gather(*[await producer.send(forward, r.value, key=r.key) for r in records])
            seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        if producer:
            await producer.stop()


async def paced(bootstrap: str, topic: str, records, rate: int) -> None:
    """Send ``records`` at ``rate`` a second, each stamped as it is sent. The producer's own
    pauses would count as the worker's latency, so none are made: the run's long-lived objects
    are frozen out of the collector (measured: 30-60 ms full collections every few seconds over
    the records held), and delivery is awaited with a flush, not by gathering one future per
    record at the end (which held up the last linger batch by up to 300 ms)."""
    # linger 5 ms: the Java producer's default since Kafka 4.0 (one request per alert otherwise)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=5,
                                **OPTIONS)
    await producer.start()
    failed: list[BaseException] = []

    def delivered(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            failed.append(future.exception())
    freeze_startup_objects()  # as the worker does: what this process holds now it holds to its end
    try:
        started = time.monotonic()
        for i, (key, value) in enumerate(records):
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            sent = await producer.send(topic, value, key=key, timestamp_ms=int(time.time() * 1000))
            sent.add_done_callback(delivered)
        await producer.flush()
    finally:
        await producer.stop()
    if failed:
        raise failed[0]


def fresh(records, suffix: bytes) -> list[tuple[bytes, bytes]]:
    return [(k + suffix, orjson.dumps({**orjson.loads(v), "alert_id": (k + suffix).decode()}))
            for k, v in records]


@contextlib.contextmanager
def broker(bootstrap: str | None, tls: bool, work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(bootstrap, the worker's security settings): the given cluster with the environment's
    security settings; else a local Tansu, plain or (``tls``) behind a TLS terminator that
    requires a client certificate, with a CA and certificates made for the run."""
    if bootstrap is not None:
        OPTIONS.update(kafka_security(load_settings()).client_options())
        try:
            yield bootstrap, {k: v for k, v in os.environ.items() if k in SECURITY_SETTINGS}
        finally:
            OPTIONS.clear()
        return
    if not tls:
        with LocalBroker(log_path=work / "tansu.log") as broker:
            yield broker.bootstrap, {}
        return
    from tests.tls import make_certificates, tls_terminator

    certs = make_certificates(work / "certs")
    plain, secured = free_port(), free_port()
    settings = {"AMLSCORE_KAFKA_SECURITY_PROTOCOL": "SSL", "AMLSCORE_KAFKA_CA_FILE": str(certs.ca),
                "AMLSCORE_KAFKA_CERT_FILE": str(certs.client_cert),
                "AMLSCORE_KAFKA_KEY_FILE": str(certs.client_key)}
    OPTIONS.update(kafka_security(load_settings(
        **{k.removeprefix("AMLSCORE_").lower(): v for k, v in settings.items()})).client_options())
    try:
        with LocalBroker(port=plain, advertised_port=secured, log_path=work / "tansu.log"), \
                tls_terminator(secured, plain, certs, work):
            yield f"127.0.0.1:{secured}", settings
    finally:
        OPTIONS.clear()
