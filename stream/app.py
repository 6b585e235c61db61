"""The Faust app: settings → topics, components, agents, timers and views.

Everything the agents need is built here once and passed in; the agents themselves hold only
the commit protocol (stream/agents.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faust

from shared.context import Context
from shared.scoring import ScoringPolicy
from shared.settings import Settings
from stream.feature_lookup import CachedFeatureLookup
from stream.metrics import WorkerMetrics
from stream.model_holder import ModelHolder
from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
from stream.progress import Progress
from stream.publisher import KafkaBatchPublisher
from stream.retry import Backoff
from stream.sinks import ClickHouseStreamSink, StreamSink, load_sink
from stream.transport import WorkerApp


@dataclass
class Worker:
    settings: Settings
    app: faust.App
    holder: ModelHolder
    sink: StreamSink
    metrics: WorkerMetrics
    progress: Progress
    stopping: threading.Event
    alerts: AlertBatchProcessor
    clusters: ClusterBatchProcessor
    publisher: KafkaBatchPublisher
    backoff: Backoff
    topics: dict[str, faust.TopicT]


def faust_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",") if host.strip()]
    app = WorkerApp(
        settings.worker_id,
        broker=brokers,
        processing_guarantee="at_least_once",  # the broker here has no transactions (DESIGN §7)
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(settings.home / "faust"),
        broker_session_timeout=settings.session_timeout,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_commit_interval=settings.commit_interval,
        broker_max_poll_records=settings.batch_size,
        stream_buffer_maxsize=max(4096, 2 * settings.batch_size),
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        topic_disable_leader=True,
        producer_acks=-1,
        producer_linger=0.005,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app


def build_worker(settings: Settings, context: Context | None = None) -> Worker:
    """Wire a worker; fails here (at startup) if the model or ClickHouse is missing."""
    context = context or Context(settings)
    holder = ModelHolder(context.models, ScoringPolicy.from_settings(settings))
    holder.load_initial()
    sink = load_sink(settings.stream_sink, ClickHouseStreamSink(context.raw, context.scores))
    sink.ping()
    app = faust_app(settings)
    metrics, stopping = WorkerMetrics(), threading.Event()
    backoff = Backoff(maximum=settings.retry_max_delay)
    config = StreamConfig(settings.scores_topic, settings.dlq_topic, settings.max_message_bytes,
                          settings.networks, settings.cluster_member_wait)
    lookup = CachedFeatureLookup(context.raw, settings.feature_cache_size, settings.feature_cache_ttl)
    raw_topic = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.topic_partitions}
    topics = {name: app.topic(getattr(settings, f"{name}_topic"), **raw_topic)
              for name in ("alerts", "clusters", "scores", "dlq")}
    worker = Worker(
        settings, app, holder, sink, metrics,
        Progress(stall_timeout=settings.stall_timeout), stopping,
        AlertBatchProcessor(holder, lookup, sink, config, metrics, stopping, backoff),
        ClusterBatchProcessor(holder, context.raw, sink, config, metrics, stopping, backoff),
        KafkaBatchPublisher(settings.kafka_bootstrap), backoff, topics,
    )
    from stream.agents import install_agents
    from stream.views import install_views
    install_agents(worker)
    install_views(worker)
    return worker
