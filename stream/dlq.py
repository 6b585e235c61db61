"""Reading and re-driving dead letters.

The DLQ is a log: reading it changes nothing, and a re-driven message stays in it too. Re-drive
publishes the original key and bytes, unchanged, to the input topic, e.g. after a schema or
network-list fix; anything still invalid is dead-lettered again with its reason.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from shared.kafka_io import Options, publish, read_topic


@dataclass(frozen=True)
class DeadLetterRecord:
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int

    @property
    def reason(self) -> str:
        return self.headers.get("dlq.reason", "unknown")

    @property
    def truncated(self) -> bool:
        """Only the first bytes of an event too large to dead-letter whole: not re-drivable."""
        return self.headers.get("dlq.truncated") == "true"


async def read_dead_letters(bootstrap: str, topic: str, idle: float = 2.0,
                            limit: int | None = None, options: Options = None) -> list[DeadLetterRecord]:
    """Every record of the DLQ, from the beginning, until it has been quiet for ``idle`` s."""
    records = await read_topic(bootstrap, topic, expected=limit, idle=idle, timeout=float("inf"),
                               options=options)
    out = [DeadLetterRecord(r.key, r.value,
                            {k: v.decode("utf-8", "replace") for k, v in (r.headers or ())},
                            r.partition, r.offset) for r in records]
    return out[:limit] if limit else out


def reasons(records: Iterable[DeadLetterRecord]) -> Counter:
    return Counter(r.reason for r in records)


def redrive(bootstrap: str, records: Iterable[DeadLetterRecord], target_topic: str,
            options: Options = None) -> int:
    chosen = [(target_topic, r.key or b"", r.value or b"") for r in records
              if r.value and not r.truncated]
    return asyncio.run(publish(iter(chosen), bootstrap, options=options))
