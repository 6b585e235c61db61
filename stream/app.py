"""Wiring of one worker, in the Faust process: settings → the scoring process, the Faust app and
its topics, the publisher, the pipeline, agents and views. Built once, at startup; every part is
handed what it needs."""

from __future__ import annotations

import logging
import os
import signal
import ssl
import threading
from dataclasses import dataclass

import faust

from shared.errors import ConfigurationError
from shared.kafka_io import BatchPublisher
from shared.kafka_security import KafkaSecurity, kafka_security
from shared.settings import Settings
from stream.access import ApiAccess
from stream.agents import install_agents
from stream.faust_app import WorkerApp
from stream.health import Health
from stream.http_api import install_views
from stream.memory import freeze_startup_objects, return_freed_heap
from stream.pipeline import Pipeline, PipelineConfig
from stream.scoring_supervisor import ScoringProcess
from stream.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)
HEAP_TRIM_INTERVAL_S = 5.0  # a trim took 0.3 ms in the scoring process, whose heaps are larger


@dataclass
class Worker:
    settings: Settings
    app: WorkerApp
    scoring_process: ScoringProcess
    publisher: BatchPublisher
    pipeline: Pipeline
    health: Health
    metrics: WorkerMetrics
    fatal: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        """Something the worker cannot carry on from: stop it the way a supervisor would, and
        exit non-zero (run_worker), for the supervisor to start it again."""
        if self.fatal is None:
            self.fatal = exc
            log.critical("stopping the worker: %s: %s", type(exc).__name__, exc)
            os.kill(os.getpid(), signal.SIGTERM)


def broker_credentials(security: KafkaSecurity) -> faust.types.auth.CredentialsT | None:
    if security.uses_sasl:
        return faust.SASLCredentials(username=security.username, password=security.password,
                                     ssl_context=security.ssl_context, mechanism=security.mechanism)
    if security.uses_tls:
        return faust.SSLCredentials(security.ssl_context)
    return None


def web_tls(settings: Settings) -> ssl.SSLContext | None:
    if settings.web_tls_cert is None and settings.web_tls_key is None:
        return None
    if settings.web_tls_cert is None or settings.web_tls_key is None:
        raise ConfigurationError("AMLSCORE_WEB_TLS_CERT and AMLSCORE_WEB_TLS_KEY go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.web_tls_cert, settings.web_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"AMLSCORE_WEB_TLS_CERT/KEY cannot be used: {exc}") from exc
    return context


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        settings.scores_topic, settings.dlq_topic, batch_size=settings.batch_size,
        batches_in_flight=settings.batches_in_flight, retry_max_delay=settings.retry_max_delay,
        cluster_member_wait=settings.cluster_member_wait, model_poll_interval=settings.model_poll_interval,
        batch_max_bytes=settings.batch_max_bytes)


def faust_app(settings: Settings, security: KafkaSecurity) -> WorkerApp:
    brokers = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",") if host.strip()]
    app = WorkerApp(
        settings.worker_id,
        broker=brokers,
        processing_guarantee="at_least_once",  # brokers without transactions (Tansu) need this
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        web_ssl_context=web_tls(settings),
        broker_credentials=broker_credentials(security),
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
    # Two micro-batches' worth queued ahead of the agent (envelopes are large messages).
    app.stream_buffer_max_bytes = 2 * settings.batch_max_bytes
    return app


def build_worker(settings: Settings, overrides: dict | None = None) -> Worker:
    """Wire a worker; fails here, at startup, if the model or ClickHouse is missing."""
    settings.home.mkdir(parents=True, exist_ok=True)  # Faust's data directory lives under it
    # Settings that cannot work fail here, before anything starts.
    access = ApiAccess.from_settings(settings)
    if access.warning:
        log.warning(access.warning)
    security = kafka_security(settings)
    web_tls(settings)
    scoring_process = ScoringProcess(overrides, max_reads=settings.api_max_concurrent,
                                     read_timeout=settings.api_query_timeout + 1.0)
    try:
        scoring_process.start()
    except BaseException:
        scoring_process.stop()
        raise
    log.info("Kafka at %s (%s)", settings.kafka_bootstrap, security.describe())
    app = faust_app(settings, security)
    raw = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.topic_partitions}
    topics = {name: app.topic(getattr(settings, f"{name}_topic"), **raw)
              for name in ("alerts", "clusters", "dispositions", "scores", "dlq")}
    metrics = WorkerMetrics()
    publisher = BatchPublisher(settings.kafka_bootstrap, client_options=security.client_options())
    config = pipeline_config(settings)
    def waiting_in_broker(topic: str) -> int:
        waiting, consumer = 0, app.consumer
        for tp in consumer.assignment():
            if tp.topic == topic:
                try:
                    highwater = consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - not fetched yet: nothing known to wait
                    continue
                if highwater is not None:
                    waiting += max(0, highwater - pipeline.taken.get((topic, tp.partition), -1) - 1)
        return waiting

    pipeline = Pipeline(scoring_process, publisher, config, metrics, on_fatal=lambda exc: worker.fail(exc),
                        waiting_in_broker=waiting_in_broker)
    health = Health(pipeline, scoring_process, settings.stall_timeout,
                    assignment=lambda: app.consumer.assignment())
    worker = Worker(settings, app, scoring_process, publisher, pipeline, health, metrics)
    install_agents(app, topics, pipeline, settings, on_fatal=worker.fail)
    install_lifecycle(worker, topics)
    install_views(app, worker.health, metrics, worker.pipeline, scoring_process, access)
    return worker


def install_lifecycle(worker: Worker, topics: dict[str, faust.TopicT]) -> None:
    app, settings = worker.app, worker.settings

    @app.task
    async def start_pipeline() -> None:
        for name in ("scores", "dlq"):
            await topics[name].maybe_declare()
        freeze_startup_objects()  # Faust's services are up: what they hold lives as long as we do
        worker.pipeline.start()

    @app.timer(1.0)
    async def heartbeat() -> None:
        worker.health.tick()

    # Fetched messages (an envelope is up to AMLSCORE_MAX_MESSAGE_BYTES) are freed into glibc's
    # heaps, which keep the pages: measured after 300,000 alerts (60,000 in envelopes), this process held
    # 6 MB less resident once trimmed. The scoring process trims at its housekeeping.
    @app.timer(HEAP_TRIM_INTERVAL_S)
    async def return_freed_memory() -> None:
        return_freed_heap()

    @app.on_partitions_assigned.connect
    async def assigned(sender, assigned, **_kwargs) -> None:  # noqa: ANN001 - faust signal
        worker.health.assigned()
        log.info("consuming %d partitions", len(assigned))

    @app.on_partitions_revoked.connect
    async def revoked(sender, revoked, **_kwargs) -> None:  # noqa: ANN001
        worker.health.revoked()

    async def stop_pipeline() -> None:
        # A graceful stop can still hang on a broker that is gone (seen: a worker ignored SIGTERM
        # for 90 minutes). Exiting without a final commit is safe: unacked batches are redelivered.
        deadline = threading.Timer(settings.shutdown_timeout, os._exit, args=(1,))
        deadline.daemon = True
        deadline.start()
        await worker.pipeline.stop()  # nothing more is acked; in-flight batches stay unacked
        worker.scoring_process.stop()

    app.before_stop = stop_pipeline

    @app.on_before_shutdown.connect
    async def stop_publisher(sender, **_kwargs) -> None:  # noqa: ANN001
        await worker.publisher.stop()
