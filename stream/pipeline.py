"""The worker's commit protocol, in the Faust process. Plain asyncio: tested with fakes.

Each agent hands over what ``noack_take`` gave it (a *chunk*) and goes on taking. A dispatcher
sends the scoring process one batch at a time: everything pending in a lane (up to
``batch_size`` events), so batches are as small as the load allows and as large as it needs
(natural batching: low latency at low rates, few per-batch costs under a backlog). Every batch
then goes through, strictly in the order it was taken within its lane:

1. **write** — the scoring process decodes, scores and writes the rows durably. A sink that is
   unavailable fails the call; it is retried (backoff) until it succeeds, never skipped.
2. **publish** — score events and dead letters are delivered (acks=all), also retried.
3. **ack** — only now are the batch's events acknowledged, after every earlier batch of the
   lane. Faust commits an offset once every event up to it is acked, so no offset is ever
   committed past an unwritten row; a crash anywhere before this redelivers the batch, and
   idempotent writes absorb the duplicates.

While one batch is published and acked, the next is already being scored. A batch that fails
holds back every later batch of its lane; stopping leaves whatever was not acked unacked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
)

from stream.messages import (
    BatchOutcome,
    BatchRequest,
    InboundBatch,
    OutboundColumns,
    SinkUnavailable,
)
from stream.metrics import WorkerMetrics
from stream.publisher import PublishIncomplete, PublishRefused
from stream.scoring_process import ScoringProcessRestarted

log = logging.getLogger(__name__)
Ack = Callable[[Sequence[Any]], Awaitable[None]]
KINDS = ("alert", "cluster", "disposition")


class Scorer(Protocol):
    async def process(self, request: BatchRequest) -> BatchOutcome: ...

    async def refresh(self) -> str | None: ...

    async def ping(self) -> None: ...


class Publisher(Protocol):
    async def publish(self, records: Sequence[OutboundColumns]) -> None: ...

    async def partitions(self, topic: str) -> int: ...


@dataclass(frozen=True)
class PipelineConfig:
    scores_topic: str
    dlq_topic: str
    batch_size: int = 2000
    batches_in_flight: int = 2          # a lane holds at most this many batches' worth unacked
    retry_max_delay: float = 10.0
    cluster_member_wait: float = 5.0    # how long a cluster batch waits for its member alerts
    member_poll: float = 0.25
    model_poll_interval: float = 5.0
    ping_interval: float = 5.0          # when idle: is the store still there? (readiness)


@dataclass
class Chunk:
    events: Sequence[Any]
    batch: InboundBatch
    ack: Ack
    taken_at: float


@dataclass
class Batch:
    kind: str
    chunks: list[Chunk]
    not_before: float = 0.0  # clusters waiting for members are asked again from then on

    @property
    def events(self) -> int:
        return sum(len(c.batch) for c in self.chunks)

    def inbound(self) -> InboundBatch:
        return InboundBatch.concat([c.batch for c in self.chunks])


@dataclass
class Lane:
    """One input topic: its chunks from taken to acknowledged, in order."""

    kind: str
    pending: deque[Chunk] = field(default_factory=deque)  # taken, not yet sent for scoring
    unacked: deque[Chunk] = field(default_factory=deque)  # taken, not yet acknowledged
    waiting: Batch | None = None                          # a cluster batch waiting for members
    last_commit: asyncio.Task | None = None
    unacked_events: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def oldest_age(self, now: float) -> float:
        return now - self.unacked[0].taken_at if self.unacked else 0.0


class Pipeline:
    def __init__(self, scorer: Scorer, publisher: Publisher, config: PipelineConfig,
                 metrics: WorkerMetrics, on_fatal: Callable[[BaseException], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.scorer, self.publisher, self.config = scorer, publisher, config
        self.metrics, self.on_fatal, self.clock = metrics, on_fatal, clock
        self.lanes = {kind: Lane(kind) for kind in KINDS}
        self.sink_error: str | None = None   # the store's last failure, None once it answers
        self.stopping = False
        self._wake = asyncio.Event()
        self._turn = 0
        self._score_partitions = 0
        self._next_refresh = 0.0
        self._last_call = 0.0
        self._commits: set[asyncio.Task] = set()
        self._dispatcher: asyncio.Task | None = None
        self.positions: dict[tuple[str, int], int] = {}  # last acknowledged offset per partition

    # -- agents' side ----------------------------------------------------------------------------
    async def submit(self, kind: str, events: Sequence[Any], batch: InboundBatch, ack: Ack) -> None:
        """Queue what one take gave; waits while the lane already holds enough unacked events
        (back-pressure: the agent stops taking, the consumer stops fetching)."""
        lane = self.lanes[kind]
        limit = self.config.batches_in_flight * self.config.batch_size
        while lane.unacked_events and lane.unacked_events + len(batch) > limit:
            lane.room.clear()
            await lane.room.wait()
        chunk = Chunk(events, batch, ack, self.clock())
        lane.pending.append(chunk)
        lane.unacked.append(chunk)
        lane.unacked_events += len(batch)
        self.metrics.events_in.labels(topic=batch.topic).inc(len(batch))
        self._wake.set()

    # -- the dispatcher ----------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        self._dispatcher = asyncio.ensure_future(self.run())
        self._dispatcher.add_done_callback(self._check_task)
        return self._dispatcher

    async def run(self) -> None:
        self._score_partitions = await self._retry("scores topic metadata", self.publisher.partitions,
                                                   self.config.scores_topic)
        self._next_refresh = self.clock() + self.config.model_poll_interval
        self._last_call = self.clock()
        while not self.stopping:
            await self._control()
            picked = self._pick()
            if picked is None:
                await self._sleep()
                continue
            await self._dispatch(*picked)

    def _pick(self) -> tuple[Lane, Batch] | None:
        now = self.clock()
        for offset in range(len(KINDS)):  # take turns, so no lane starves another
            lane = self.lanes[KINDS[(self._turn + offset) % len(KINDS)]]
            if lane.waiting is not None:
                if lane.waiting.not_before <= now:
                    self._turn += offset + 1
                    return lane, lane.waiting
                continue
            if lane.pending:
                chunks = [lane.pending.popleft()]
                size = len(chunks[0].batch)
                while lane.pending and size + len(lane.pending[0].batch) <= self.config.batch_size:
                    size += len(lane.pending[0].batch)
                    chunks.append(lane.pending.popleft())
                self._turn += offset + 1
                return lane, Batch(lane.kind, chunks)
        return None

    async def _sleep(self) -> None:
        now = self.clock()
        wake_at = [self._next_refresh, self._last_call + self.config.ping_interval]
        wake_at += [lane.waiting.not_before for lane in self.lanes.values() if lane.waiting]
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, min(wake_at) - now))
        except TimeoutError:
            pass

    async def _dispatch(self, lane: Lane, batch: Batch) -> None:
        final = (lane.kind != "cluster"
                 or self.clock() >= batch.chunks[0].taken_at + self.config.cluster_member_wait)
        request = BatchRequest(lane.kind, batch.inbound(), self._score_partitions, final)
        sent_at = time.time()
        outcome = await self._retry(f"{lane.kind} batch", self.scorer.process, request)
        self._last_call = self.clock()
        self.metrics.observe_phases(lane.kind, outcome, sent_at, time.time())
        if outcome.members_pending:
            # Members still in flight: ask again soon; alert batches go on meanwhile.
            batch.not_before = self._last_call + self.config.member_poll
            lane.waiting = batch
            return
        lane.waiting = None
        task = asyncio.ensure_future(self._commit(lane, batch, outcome, lane.last_commit))
        lane.last_commit = task
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        task.add_done_callback(self._check_task)

    # -- publish and acknowledge, in order ---------------------------------------------------------
    async def _commit(self, lane: Lane, batch: Batch, outcome: BatchOutcome,
                      previous: asyncio.Task | None) -> None:
        if previous is not None:
            await previous  # strictly in order: a batch that failed holds this one back
        records = [r for r in (outcome.scores,) if r is not None and len(r)]
        if outcome.dead:
            records.append(OutboundColumns.dead_letters(self.config.dlq_topic, outcome.dead))
        started = self.clock()
        if records:
            await self._publish(records)
        published = self.clock()
        for chunk in batch.chunks:
            await chunk.ack(chunk.events)
        self._release(lane, batch)
        positions = self.positions
        for chunk in batch.chunks:
            topic = chunk.batch.topic
            for partition, offset in zip(chunk.batch.partitions, chunk.batch.offsets, strict=True):
                if offset > positions.get((topic, partition), -1):
                    positions[(topic, partition)] = offset
        now = self.clock()
        self.metrics.batch_done(lane.kind, batch, outcome, published - started, now - published,
                                now - batch.chunks[0].taken_at, time.time())

    async def _publish(self, records: list[OutboundColumns]) -> None:
        """Retried until delivered; a retry sends only what the broker has not acknowledged,
        so a partial failure republishes nothing. A permanent refusal is not retried."""
        remaining = records

        async def attempt() -> None:
            nonlocal remaining
            try:
                await self.publisher.publish(remaining)
            except PublishIncomplete as exc:
                remaining = exc.remaining
                raise
        await self._retry("publish", attempt)

    def _release(self, lane: Lane, batch: Batch) -> None:
        for chunk in batch.chunks:
            assert lane.unacked[0] is chunk, "chunks are acknowledged in the order taken"
            lane.unacked.popleft()
        lane.unacked_events -= batch.events
        lane.room.set()

    # -- model reloads and store pings, between batches -------------------------------------------
    async def _control(self) -> None:
        now = self.clock()
        if now >= self._next_refresh:
            self._next_refresh = now + self.config.model_poll_interval
            failed_before = self._reload_failures()
            version = await self._retry("model refresh", self.scorer.refresh)
            if version is not None:
                self.metrics.model_reloads.labels(result="loaded").inc()
            elif self._reload_failures() > failed_before:
                self.metrics.model_reloads.labels(result="refused").inc()
        if now - self._last_call >= self.config.ping_interval:
            try:
                await self.scorer.ping()
                self.sink_error = None
            except SinkUnavailable as exc:
                self.sink_error = str(exc)
            except ScoringProcessRestarted:
                pass
            self._last_call = self.clock()

    def _reload_failures(self) -> int:
        status = getattr(self.scorer, "status", None)
        return status.reload_failures if status is not None else 0

    # -- retries, failures, shutdown ---------------------------------------------------------------
    async def _retry(self, what: str, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Until it succeeds: the store or the broker being away is waited out, never skipped."""
        def failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s failed (attempt %d, next in %.1fs): %s", what, state.attempt_number,
                        delay, exc)
            if isinstance(exc, SinkUnavailable):
                self.sink_error = str(exc)
                self.metrics.sink_failures.inc()
            elif what == "publish":
                self.metrics.publish_failures.inc()

        if what == "publish":
            # Exception, not BaseException: a cancelled publish (shutdown) must not be retried.
            retry = retry_if_exception_type(Exception) & retry_if_not_exception_type(PublishRefused)
        else:
            retry = retry_if_exception_type((SinkUnavailable, ScoringProcessRestarted))
        async for attempt in AsyncRetrying(
                retry=retry, reraise=True, before_sleep=failed,
                wait=wait_exponential(multiplier=0.1, max=self.config.retry_max_delay)):
            with attempt:
                result = await func(*args)
        if isinstance(self.sink_error, str) and what != "publish":
            self.sink_error = None
        return result

    def _check_task(self, task: asyncio.Task) -> None:
        if task.cancelled() or self.stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.critical("the worker's pipeline failed: %r", exc, exc_info=exc)
            self.on_fatal(exc)

    def alive(self) -> bool:
        """False once the dispatcher has ended (it never does but on stop or a fatal error)."""
        return self._dispatcher is None or not self._dispatcher.done()

    async def stop(self) -> None:
        """Score, publish and acknowledge nothing more: what is not acked stays unacked."""
        self.stopping = True
        tasks = [t for t in (self._dispatcher, *self._commits) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
