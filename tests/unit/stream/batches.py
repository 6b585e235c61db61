"""Micro-batches for tests, from messages (the worker itself builds them from Faust events)."""

from __future__ import annotations

from collections.abc import Sequence

from stream.boundary import Inbound, MicroBatch


def micro_batch(messages: Sequence[Inbound]) -> MicroBatch:
    topic = messages[0].topic if messages else ""
    return MicroBatch(topic, [m.key for m in messages], [m.value for m in messages],
                      [m.partition for m in messages], [m.offset for m in messages],
                      [m.timestamp for m in messages])
