"""The Faust app: settings → topics, the scoring process, agents, timers and views.

Everything the agents need is built here once and passed in; the agents themselves hold only
the commit protocol (stream/agents.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faust

from shared.settings import Settings
from stream.metrics import WorkerMetrics
from stream.progress import Progress
from stream.publisher import EventPublisher, KafkaBatchPublisher
from stream.retry import Backoff
from stream.scoring_process import ScoringProcess
from stream.transport import WorkerApp


@dataclass
class Worker:
    settings: Settings
    app: faust.App
    scorer: ScoringProcess
    metrics: WorkerMetrics
    progress: Progress
    stopping: threading.Event
    publisher: EventPublisher
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


def build_worker(settings: Settings, overrides: dict | None = None) -> Worker:
    """Wire a worker; fails here (at startup) if the model or ClickHouse is missing."""
    scorer = ScoringProcess(overrides or {})
    try:
        scorer.start()
    except BaseException:
        scorer.stop()
        raise
    app = faust_app(settings)
    raw_topic = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.topic_partitions}
    topics = {name: app.topic(getattr(settings, f"{name}_topic"), **raw_topic)
              for name in ("alerts", "clusters", "scores", "dlq")}
    worker = Worker(settings, app, scorer, WorkerMetrics(scorer.sink_failures),
                    Progress(stall_timeout=settings.stall_timeout),
                    threading.Event(), KafkaBatchPublisher(settings.kafka_bootstrap),
                    Backoff(maximum=settings.retry_max_delay), topics)
    from stream.agents import install_agents
    from stream.views import install_views
    install_agents(worker)
    install_views(worker)
    return worker
