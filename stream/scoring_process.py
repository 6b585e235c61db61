"""The scoring half of the worker, in a process of its own.

Faust's per-message machinery and the scoring code are both Python: in one process they take
turns on one interpreter lock, and on two cores the worker ran at ~3k alerts/s while each half
alone managed 2-3× that. So the worker is two processes: this one owns ClickHouse, the model,
the feature lookup, the processors and the sink retries; the Faust process consumes, publishes
and acks. A one-process pool serialises the batches (and model swaps) it is given; the Faust side
still publishes and acks strictly in order, so the commit protocol does not change.

Only this process opens ClickHouse (the embedded engine serves one process per directory).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from stream.messages import Inbound
from stream.processor import BatchResult

_state: dict = {}


@dataclass(frozen=True)
class ModelStatus:
    version: str
    networks: tuple[str, ...]
    reload_failures: int
    last_error: str = ""


# -- in the scoring process ------------------------------------------------------------------

def _watch_parent(parent: int) -> None:
    while True:  # a parent killed with SIGKILL cannot shut the pool down: leave on our own
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(1.0)


def _initialise(overrides: dict, stopping, failures, parent: int) -> None:  # noqa: ANN001 - mp objects
    # The Faust process owns shutdown: it stops the pool after its own signal handling.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _state.update(overrides=overrides, stopping=stopping, failures=failures)


def _status() -> ModelStatus:
    holder = _state["holder"]
    return ModelStatus(holder.scoring.model_version, holder.networks, holder.status.failed,
                       holder.status.last_error)


def _start() -> ModelStatus:
    """Build everything; errors (no model, bad settings, ClickHouse down) surface to the caller."""
    from shared.context import Context
    from shared.scoring import ScoringPolicy
    from shared.settings import load_settings
    from stream.feature_lookup import CachedFeatureLookup
    from stream.metrics import WorkerMetrics
    from stream.model_holder import ModelHolder
    from stream.processor import AlertBatchProcessor, ClusterBatchProcessor, StreamConfig
    from stream.retry import Backoff
    from stream.sinks import ClickHouseStreamSink, load_sink

    settings = load_settings(**_state["overrides"])
    context = Context(settings)
    holder = ModelHolder(context.models, ScoringPolicy.from_settings(settings))
    holder.load_initial()
    sink = load_sink(settings.stream_sink, ClickHouseStreamSink(context.raw, context.scores))
    sink.ping()
    # Sink failures go to a counter shared with the Faust process: /metrics shows an outage as
    # it happens, not when the batch finally gets through.
    metrics, stopping = WorkerMetrics(_state["failures"]), _state["stopping"]
    backoff = Backoff(maximum=settings.retry_max_delay)
    config = StreamConfig(settings.scores_topic, settings.dlq_topic, settings.max_message_bytes,
                          settings.networks, settings.cluster_member_wait)
    lookup = CachedFeatureLookup(context.raw, settings.feature_cache_size, settings.feature_cache_ttl)
    _state.update(
        holder=holder, sink=sink, metrics=metrics,
        alert=AlertBatchProcessor(holder, lookup, sink, config, metrics, stopping, backoff),
        cluster=ClusterBatchProcessor(holder, context.raw, sink, config, metrics, stopping, backoff),
    )
    return _status()


def _process(kind: str, messages: Sequence[Inbound]) -> BatchResult:
    return _state[kind].process(messages)


def _refresh() -> tuple[str | None, ModelStatus]:
    return _state["holder"].refresh(), _status()


def _ping() -> None:
    _state["sink"].ping()


# -- in the Faust process ----------------------------------------------------------------------

class ScoringProcess:
    def __init__(self, overrides: dict) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.stopping = context.Event()
        self.sink_failures = context.Value("d", 0.0)
        self.pool = ProcessPoolExecutor(1, mp_context=context, initializer=_initialise,
                                        initargs=(overrides, self.stopping, self.sink_failures,
                                                  os.getpid()))
        self.status: ModelStatus | None = None

    def start(self) -> ModelStatus:
        self.status = self.pool.submit(_start).result()
        return self.status

    async def process(self, kind: str, messages: Sequence[Inbound]) -> BatchResult:
        return await asyncio.get_running_loop().run_in_executor(self.pool, _process, kind, messages)

    async def refresh(self) -> str | None:
        version, self.status = await asyncio.get_running_loop().run_in_executor(self.pool, _refresh)
        return version

    async def ping(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self.pool, _ping), timeout)

    def stop(self) -> None:
        self.stopping.set()  # retry loops give up; unfinished batches stay unacknowledged
        self.pool.shutdown(wait=False, cancel_futures=True)
