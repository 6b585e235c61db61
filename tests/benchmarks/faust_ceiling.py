"""Bare Faust agents on the benchmark's topic, to measure the framework's own ceiling:
BENCH_MODE=consume (noack_take + ack, nothing else), send (plus one topic.send per event) or
forward (each take published to ``<topic>.out`` through the worker's own publisher, delivery
awaited with acks=all, then acked: the worker's path with no scoring, its latency floor). Same App
class and fetch wait as the worker (AMLSCORE_FETCH_MAX_WAIT_MS's default).
Progress is appended to BENCH_PROGRESS as "count monotonic_time" lines."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shared.kafka_io import BatchPublisher, OutboundRecords
from shared.kafka_security import kafka_security
from shared.settings import load_settings
from stream.app import broker_credentials
from stream.faust_app import WorkerApp

# The worker's own App class, fetch wait and Kafka security settings (AMLSCORE_KAFKA_*), so the
# ceiling and the worker meet the broker alike.
app = WorkerApp(
    os.environ.get("BENCH_GROUP", "bench-ceiling"), broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
    broker_credentials=broker_credentials(kafka_security(load_settings())),
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6099")), broker_session_timeout=6,
    broker_rebalance_timeout=6, broker_heartbeat_interval=1, consumer_auto_offset_reset="earliest",
    broker_max_poll_records=2000, stream_buffer_maxsize=4096, topic_disable_leader=True,
    processing_guarantee="at_least_once",
    # Faust's data directory beside the run's progress file, not in the directory it starts from.
    datadir=str(Path(os.environ["BENCH_PROGRESS"]).with_suffix(".faust-data")),
)
app.fetch_max_wait_ms = int(os.environ.get("BENCH_FETCH_MAX_WAIT_MS", "20"))
source = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["BENCH_TOPIC"] + ".out", key_serializer="raw", value_serializer="raw")
MODE = os.environ.get("BENCH_MODE", "consume")
publisher = BatchPublisher(os.environ["BENCH_BOOTSTRAP"],
                           client_options=kafka_security(load_settings()).client_options())
progress = open(os.environ["BENCH_PROGRESS"], "a")  # noqa: SIM115
seen = 0


@app.agent(source)
async def ceiling(stream) -> None:  # noqa: ANN001
    global seen
    async for events in stream.noack_take(2000, within=0.05):
        if MODE == "forward":
            await publisher.publish([OutboundRecords(
                sink.get_topic_name(), [e.message.key for e in events], [e.message.value for e in events])])
        if MODE == "send":
            for event in events:
                await sink.send(key=event.message.key, value=event.message.value)
        for event in events:
            await stream.ack(event)
        seen += len(events)
        progress.write(f"{seen} {time.monotonic()}\n")
        progress.flush()
