"""Fakes for the commit protocol's tests: a scoring process and a publisher that write what they
do in one journal, and a harness that wires them to a :class:`stream.pipeline.Pipeline`."""

from __future__ import annotations

import asyncio

from stream.boundary import (
    DeadLetter,
    Housekeeping,
    MicroBatch,
    ModelStatus,
    OutboundRecords,
    ScoringOutcome,
)
from stream.pipeline import Pipeline, PipelineConfig
from stream.worker_metrics import WorkerMetrics

CONFIG = PipelineConfig("scores", "dlq", batch_size=10, batches_in_flight=2, retry_max_delay=0.01,
                        cluster_member_wait=0.3, member_poll=0.02, model_poll_interval=60,
                        ping_interval=60)


def micro_batch(topic: str, first: int, n: int) -> MicroBatch:
    offsets = list(range(first, first + n))
    return MicroBatch(topic, [str(o).encode() for o in offsets], [b"v"] * n, [0] * n, offsets,
                        [None] * n)


class Journal:
    """One ordered record of what happened to which offsets."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, tuple[int, ...]]] = []

    def add(self, what: str, offsets) -> None:  # noqa: ANN001
        self.entries.append((what, tuple(offsets)))

    def acked(self) -> list[int]:
        return [o for what, offsets in self.entries if what == "ack" for o in offsets]

    def steps(self, offset: int) -> list[str]:
        return [what for what, offsets in self.entries if offset in offsets]


class FakeScorer:
    """Writes (in the journal) and answers; ``hold`` pauses it, ``failures`` makes the next
    calls fail as an unavailable sink would, ``pending_until`` keeps clusters waiting."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.hold = asyncio.Event()
        self.hold.set()
        self.failures: list[BaseException] = []
        self.calls: list[tuple[str, int, bool]] = []
        self.members_arrive_after = 0  # cluster calls answered "pending" before that many calls
        self.housekept: list[tuple[float, frozenset]] = []
        self.ping_error: str | None = None

    async def process(self, request):  # noqa: ANN001, ANN201
        await self.hold.wait()
        self.calls.append((request.kind, len(request.batch), request.final))
        if self.failures:
            raise self.failures.pop(0)
        if request.kind == "cluster" and not request.final and self.members_arrive_after > 0:
            self.members_arrive_after -= 1
            return ScoringOutcome("cluster", members_pending=True)
        self.journal.add("write", request.batch.offsets)
        batch = request.batch
        scores = OutboundRecords("scores", list(batch.keys), list(batch.values), [0] * len(batch))
        dead = [DeadLetter(batch.message(0), "schema_violation", "x")] if batch.values[0] == b"bad" else []
        return ScoringOutcome(request.kind, scored=len(batch) - len(dead), scores=scores, dead=dead)

    async def housekeeping(self, due):  # noqa: ANN001, ANN201
        self.housekept.append((asyncio.get_running_loop().time(), due))
        return Housekeeping(ModelStatus("v1", ("ethereum",), 0), drift={"rows": len(self.housekept)}
                            if "drift" in due else None, sink_error=self.ping_error if "ping" in due else None)


class FakePublisher:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.failures = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.slow: set[int] = set()  # a publish holding one of these offsets waits for the gate
        self.published: list[OutboundRecords] = []

    async def partitions(self, topic: str) -> int:
        return 1

    async def publish(self, records) -> None:  # noqa: ANN001
        offsets = {int(k) for r in records for k in r.keys}
        if not self.slow or offsets & self.slow:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.published += records
        self.journal.add("publish", [int(k) for r in records if r.topic == "scores" for k in r.keys])


class Harness:
    def __init__(self, config: PipelineConfig = CONFIG) -> None:
        self.journal = Journal()
        self.scorer = FakeScorer(self.journal)
        self.publisher = FakePublisher(self.journal)
        self.fatal: list[BaseException] = []
        self.metrics = WorkerMetrics()
        self.pipeline = Pipeline(self.scorer, self.publisher, config, self.metrics, self.fatal.append)

    async def ack(self, events) -> None:  # noqa: ANN001
        self.journal.add("ack", events)

    async def submit(self, kind: str, first: int, n: int, topic: str = "alerts") -> None:
        batch = micro_batch(topic, first, n)
        await self.pipeline.submit(kind, batch.offsets, batch, self.ack)


async def until(condition, timeout: float = 3.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


def run(coro) -> None:  # noqa: ANN001
    asyncio.run(asyncio.wait_for(coro, 20))
