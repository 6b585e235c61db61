"""What is handed over to be published: records for one topic, as columns. Plain data with no
Kafka client behind it, so the process that builds them (the worker's scoring process) never
loads aiokafka, which it would not use (measured with ``python -m tests.benchmarks.memory_floor``:
its imports 180.0 → 176.5 MB resident, and 0.1 s less to start)."""

from __future__ import annotations

from dataclasses import dataclass, field

Header = tuple[tuple[str, bytes], ...]


@dataclass
class OutboundRecords:
    """Records for one topic, as columns; a partition of -1 leaves the choice to the client."""

    topic: str
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    partitions: list[int] | None = None
    headers: list[Header] | None = None
    one_per_batch: bool = False  # dead letters: the broker refusing one refuses only it

    def __len__(self) -> int:
        return len(self.values)
