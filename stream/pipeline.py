"""The worker's commit protocol, in the Faust process. Plain asyncio: tested with fakes.

Each agent hands over what ``noack_take`` gave it (a *chunk*) and goes on taking. A dispatcher
sends the scoring process one micro-batch at a time: everything pending in a lane (up to
``batch_size`` events), so micro-batches are as small as the load allows and as large as it
needs (natural batching: low latency at low rates, few per-call costs under a backlog). Every
micro-batch also holds at most ``batch_max_bytes`` of event values: an envelope carries hundreds
of alerts in one message, so a count of messages alone does not bound what the scoring process
decodes, scores and holds at once. Every micro-batch then goes through, strictly in the order it was taken within its lane:

1. **write** — the scoring process decodes, scores and writes the rows durably. A sink that is
   unavailable fails the call; it is retried (backoff) until it succeeds, never skipped.
2. **publish** — score events and dead letters are delivered (acks=all), also retried.
3. **ack** — only now are its events acknowledged, after every earlier micro-batch of the lane.
   Faust commits an offset once every event up to it is acked, so no offset is ever committed
   past an unwritten row; a crash anywhere before this redelivers the micro-batch, and
   idempotent writes absorb the duplicates.

While one micro-batch is published and acked, the next is already being scored. One that fails
holds back every later one of its lane; stopping leaves whatever was not acked unacked.

Between two micro-batches the dispatcher is also the one way periodic work reaches the scoring
process (:meth:`Pipeline._housekeep`): model reloads, store pings when idle, drift and the
decision figures, each on its own interval (``stream.housekeeping`` says which are due), in one
call.
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

from shared.kafka_io import PublishIncomplete, PublishRefused
from stream.boundary import (
    PING,
    DeadLetter,
    Housekeeping,
    MicroBatch,
    OutboundRecords,
    ScoringOutcome,
    ScoringProcessRestarted,
    ScoringRequest,
    SinkUnavailable,
)
from stream.housekeeping import HousekeepingSchedule, Intervals
from stream.worker_metrics import WorkerMetrics

log = logging.getLogger(__name__)
Ack = Callable[[Sequence[Any]], Awaitable[None]]
KINDS = ("alert", "cluster", "disposition")


class ScoringCalls(Protocol):
    """The scoring process, as the pipeline calls it."""

    async def process(self, request: ScoringRequest) -> ScoringOutcome: ...

    async def housekeeping(self, due: frozenset[str]) -> Housekeeping: ...


class Publisher(Protocol):
    async def publish(self, records: Sequence[OutboundRecords]) -> None: ...

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
    drift_interval: float = 15.0        # drift gauges recomputed (and sooner when /drift asks)
    decisions_interval: float = 60.0    # decision gauges recounted from alert_dispositions
    fill_wait: float = 0.5              # behind the broker: longest a micro-batch waits to fill
    batch_max_bytes: int = 4 * 1024 * 1024  # of event values per micro-batch, besides batch_size

    def intervals(self) -> Intervals:
        return Intervals(self.model_poll_interval, self.ping_interval, self.drift_interval,
                         self.decisions_interval)


@dataclass
class Chunk:
    events: Sequence[Any]
    batch: MicroBatch
    ack: Ack
    taken_at: float
    nbytes: int = 0


@dataclass
class InFlight:
    """Chunks of one lane sent to the scoring process as one micro-batch."""

    kind: str
    chunks: list[Chunk]
    not_before: float = 0.0  # clusters waiting for members are asked again from then on

    @property
    def events(self) -> int:
        return sum(len(c.batch) for c in self.chunks)

    def batch(self) -> MicroBatch:
        return MicroBatch.concat([c.batch for c in self.chunks])


@dataclass
class Lane:
    """One input topic: its chunks from taken to acknowledged, in order."""

    kind: str
    pending: deque[Chunk] = field(default_factory=deque)  # taken, not yet sent for scoring
    unacked: deque[Chunk] = field(default_factory=deque)  # taken, not yet acknowledged
    waiting: InFlight | None = None                       # clusters waiting for members
    last_commit: asyncio.Task | None = None
    unacked_events: int = 0
    unacked_bytes: int = 0
    room: asyncio.Event = field(default_factory=asyncio.Event)

    def oldest_age(self, now: float) -> float:
        return now - self.unacked[0].taken_at if self.unacked else 0.0


class Pipeline:
    def __init__(self, scoring: ScoringCalls, publisher: Publisher, config: PipelineConfig,
                 metrics: WorkerMetrics, on_fatal: Callable[[BaseException], None],
                 clock: Callable[[], float] = time.monotonic,
                 waiting_in_broker: Callable[[str], int] = lambda topic: 0) -> None:
        """``waiting_in_broker(topic)``: messages of the topic in this worker's partitions not
        taken yet (the consumer's high watermarks less :attr:`taken`)."""
        self.scoring, self.publisher, self.config = scoring, publisher, config
        self.waiting_in_broker = waiting_in_broker
        self.metrics, self.on_fatal, self.clock = metrics, on_fatal, clock
        self.lanes = {kind: Lane(kind) for kind in KINDS}
        self.sink_error: str | None = None   # the store's last failure, None once it answers
        self.stopping = False
        self._wake = asyncio.Event()
        self.housekeeping = HousekeepingSchedule(config.intervals(), metrics, self._wake, clock)
        self._turn = 0
        self._commits: set[asyncio.Task] = set()
        self._dispatcher: asyncio.Task | None = None
        self.positions: dict[tuple[str, int], int] = {}  # last acknowledged offset per partition
        self.taken: dict[tuple[str, int], int] = {}      # last offset taken, per partition

    # -- agents' side ----------------------------------------------------------------------------
    async def submit(self, kind: str, events: Sequence[Any], batch: MicroBatch, ack: Ack) -> None:
        """Queue what one take gave, in chunks of at most ``batch_max_bytes``; waits while the
        lane already holds enough unacked events or bytes (back-pressure: the agent stops taking,
        the consumer stops fetching)."""
        spans = batch.spans(self.config.batch_max_bytes)
        if len(spans) == 1:
            await self._queue(self.lanes[kind], Chunk(events, batch, ack, self.clock(), batch.nbytes))
            return
        for start, stop in spans:
            part = batch.slice(start, stop)
            await self._queue(self.lanes[kind], Chunk(events[start:stop], part, ack, self.clock(), part.nbytes))

    async def _queue(self, lane: Lane, chunk: Chunk) -> None:
        config = self.config
        while lane.unacked_events and (
                lane.unacked_events + len(chunk.batch) > config.batches_in_flight * config.batch_size
                or lane.unacked_bytes + chunk.nbytes > config.batches_in_flight * config.batch_max_bytes):
            lane.room.clear()
            await lane.room.wait()
        batch, taken = chunk.batch, self.taken
        for partition, offset in zip(batch.partitions, batch.offsets, strict=True):
            taken[(batch.topic, partition)] = offset  # a partition's offsets come in order
        lane.pending.append(chunk)
        lane.unacked.append(chunk)
        lane.unacked_events += len(batch)
        lane.unacked_bytes += chunk.nbytes
        self.metrics.events_in.labels(topic=batch.topic).inc(len(batch))
        self._wake.set()

    # -- the dispatcher ----------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        self._dispatcher = asyncio.ensure_future(self.run())
        self._dispatcher.add_done_callback(self._check_task)
        return self._dispatcher

    async def run(self) -> None:
        while not self.stopping:
            await self._housekeep()
            picked = self._pick()
            if picked is None:
                await self._sleep()
                continue
            await self._dispatch(*picked)

    def _pick(self) -> tuple[Lane, InFlight] | None:
        now = self.clock()
        for offset in range(len(KINDS)):  # take turns, so no lane starves another
            lane = self.lanes[KINDS[(self._turn + offset) % len(KINDS)]]
            if lane.waiting is not None:
                if lane.waiting.not_before <= now:
                    self._turn += offset + 1
                    return lane, lane.waiting
                continue
            if lane.pending and self._filling(lane, now):
                continue
            if lane.pending:
                chunks = [lane.pending.popleft()]
                size, nbytes = len(chunks[0].batch), chunks[0].nbytes
                while lane.pending and size + len(lane.pending[0].batch) <= self.config.batch_size \
                        and nbytes + lane.pending[0].nbytes <= self.config.batch_max_bytes:
                    size += len(lane.pending[0].batch)
                    nbytes += lane.pending[0].nbytes
                    chunks.append(lane.pending.popleft())
                self._turn += offset + 1
                return lane, InFlight(lane.kind, chunks)
        return None

    def _filling(self, lane: Lane, now: float) -> bool:
        """Behind the broker (a full micro-batch's worth still waiting there), a lane waits for a
        full micro-batch — up to ``fill_wait`` — instead of sending what it has: every call and
        every write has a fixed cost (a ClickHouse part, merged later), and small micro-batches
        under a backlog spend the CPU the consumer needs. Keeping up, it sends at once."""
        pending = sum(len(c.batch) for c in lane.pending)
        full = (pending >= self.config.batch_size
                or sum(c.nbytes for c in lane.pending) >= self.config.batch_max_bytes)
        if full or now - lane.pending[0].taken_at >= self.config.fill_wait:
            return False
        return self.waiting_in_broker(lane.pending[0].batch.topic) >= self.config.batch_size - pending

    async def _sleep(self) -> None:
        now = self.clock()
        wake_at = [self.housekeeping.next_due()]
        wake_at += [lane.waiting.not_before for lane in self.lanes.values() if lane.waiting]
        wake_at += [lane.pending[0].taken_at + self.config.fill_wait for lane in self.lanes.values()
                    if lane.pending]
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), max(0.0, min(wake_at) - now))
        except TimeoutError:
            pass

    async def _partitions(self) -> dict[str, int]:
        """Partition counts now (the client's metadata, refreshed as it ages)."""
        topics = (self.config.scores_topic, self.config.dlq_topic)
        counts = await self._retry_publishing("topic metadata", lambda: asyncio.gather(
            *(self.publisher.partitions(t) for t in topics)))
        return dict(zip(topics, counts, strict=True))

    async def _dispatch(self, lane: Lane, flight: InFlight) -> None:
        final = (lane.kind != "cluster"
                 or self.clock() >= flight.chunks[0].taken_at + self.config.cluster_member_wait)
        request = ScoringRequest(lane.kind, flight.batch(), await self._partitions(), final)
        sent_at = time.time()
        outcome = await self._retry_scoring(f"{lane.kind} micro-batch", self.scoring.process, request)
        answered = self.housekeeping.store_answered()
        self.metrics.observe_phases(lane.kind, outcome, sent_at, time.time())
        if outcome.members_pending:
            # Members still in flight: ask again soon; alerts go on meanwhile.
            flight.not_before = answered + self.config.member_poll
            lane.waiting = flight
            return
        lane.waiting = None
        task = asyncio.ensure_future(self._commit(lane, flight, outcome, lane.last_commit))
        lane.last_commit = task
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        task.add_done_callback(self._check_task)

    # -- publish and acknowledge, in order ---------------------------------------------------------
    async def _commit(self, lane: Lane, flight: InFlight, outcome: ScoringOutcome,
                      previous: asyncio.Task | None) -> None:
        if previous is not None:
            await previous  # strictly in order: a micro-batch that failed holds this one back
        records = [r for r in (outcome.scores,) if r is not None and len(r)]
        if outcome.dead:
            records.append(DeadLetter.records(self.config.dlq_topic, outcome.dead))
        started = self.clock()
        if records:
            await self._publish(records)
        published = self.clock()
        # Only now: every row of the micro-batch is written and every record it produced is
        # acknowledged by the broker, so no offset is committed past anything not durable.
        for chunk in flight.chunks:
            await chunk.ack(chunk.events)
        self._release(lane, flight)
        positions = self.positions
        for chunk in flight.chunks:
            topic = chunk.batch.topic
            for partition, offset in zip(chunk.batch.partitions, chunk.batch.offsets, strict=True):
                if offset > positions.get((topic, partition), -1):
                    positions[(topic, partition)] = offset
        now = self.clock()
        self.metrics.batch_done(lane.kind, [c.batch.timestamps for c in flight.chunks], outcome,
                                published - started, now - published,
                                now - flight.chunks[0].taken_at, time.time())

    async def _publish(self, records: list[OutboundRecords]) -> None:
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
        await self._retry_publishing("publish", attempt)

    def _release(self, lane: Lane, flight: InFlight) -> None:
        for chunk in flight.chunks:
            assert lane.unacked[0] is chunk, "chunks are acknowledged in the order taken"
            lane.unacked.popleft()
        lane.unacked_events -= flight.events
        lane.unacked_bytes -= sum(c.nbytes for c in flight.chunks)
        lane.room.set()

    # -- housekeeping: the one way periodic work reaches the scoring process ----------------------
    async def _housekeep(self) -> None:
        due = self.housekeeping.due()
        if not due:
            return
        self.housekeeping.calling(due)
        report = await self._retry_scoring("housekeeping", self.scoring.housekeeping, due)
        if PING in due:
            self.sink_error = report.sink_error
        self.housekeeping.answered(report, due)

    # -- retries, failures, shutdown ---------------------------------------------------------------
    async def _retry(self, what: str, func: Callable[..., Awaitable[Any]], args: tuple,
                     retry: Any, on_failure: Callable[[BaseException | None], None]) -> Any:
        """Until it succeeds: the store or the broker being away is waited out, never skipped."""
        def failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s failed (attempt %d, next in %.1fs): %s", what, state.attempt_number,
                        delay, exc)
            on_failure(exc)

        async for attempt in AsyncRetrying(
                retry=retry, reraise=True, before_sleep=failed,
                wait=wait_exponential(multiplier=0.1, max=self.config.retry_max_delay)):
            with attempt:
                result = await func(*args)
        return result

    async def _retry_scoring(self, what: str, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A call into the scoring process: retried while the store is unavailable or the
        process was restarted under it; any other error is the worker's end."""
        def failure(exc: BaseException | None) -> None:
            if isinstance(exc, SinkUnavailable):
                self.sink_error = str(exc)
                self.metrics.sink_failures.inc()
        result = await self._retry(what, func, args,
                                   retry_if_exception_type((SinkUnavailable, ScoringProcessRestarted)),
                                   failure)
        if what != "housekeeping":  # a micro-batch written: the store answers
            self.sink_error = None
        return result

    async def _retry_publishing(self, what: str, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """A call to the broker: retried on anything but a permanent refusal (and but a cancel:
        Exception, not BaseException, so that a publish cancelled at shutdown is not retried)."""
        return await self._retry(what, func, args,
                                 retry_if_exception_type(Exception) & retry_if_not_exception_type(PublishRefused),
                                 lambda _exc: self.metrics.publish_failures.inc())

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
