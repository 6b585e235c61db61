"""Faust's stream buffer, bounded in bytes as well as in messages.

Faust keeps the messages it has fetched for an agent in a queue bounded only in messages
(``stream_buffer_maxsize``, here at least 4,096). Envelopes make a message up to
``AMLSCORE_MAX_MESSAGE_BYTES`` (1 MiB by default) of alerts, so a backlog of them could fill that
queue with gigabytes before the pipeline's own bound in bytes ever sees them. This queue is also
full once the message values it holds reach ``max_bytes``, and reports pressure (Faust then stops
fetching the partition until it drains) at the same fractions of the byte bound as Faust uses for
its count bound. An empty queue always takes a message, whatever its size: a bound below one
message must not stop the stream.
"""

from __future__ import annotations

from typing import Any

from mode.utils.queues import ThrowableQueue


def value_bytes(item: Any) -> int:
    """Bytes of the Kafka message value an item carries (a Faust event); 0 for anything else."""
    value = getattr(getattr(item, "message", None), "value", None)
    return len(value) if isinstance(value, bytes | bytearray | memoryview) else 0


class ByteBoundedQueue(ThrowableQueue):
    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0  # of the values queued now
        super().__init__(*args, **kwargs)

    # asyncio.Queue's hooks for the storage (as PriorityQueue uses them): every way in or out
    # (put, put_nowait, Faust's force_put_nowait, get, get_nowait) passes through these two.
    def _put(self, item: Any) -> None:
        super()._put(item)
        self.bytes += value_bytes(item)

    def _get(self) -> Any:
        item = super()._get()
        self.bytes -= value_bytes(item)
        return item

    def clear(self) -> None:
        super().clear()
        self.bytes = 0

    def full(self) -> bool:
        return super().full() or (self.qsize() > 0 and self.bytes >= self.max_bytes)

    def _bytes_high(self) -> bool:
        return self.bytes >= self.max_bytes / self.pressure_high_ratio

    def _bytes_low(self) -> bool:
        return self.bytes <= self.max_bytes * self.pressure_drop_ratio

    # Faust's pressure protocol (mode's FlowControlQueue), with the byte bound beside the count:
    # high when either is high, dropped only when both are low.
    def in_pressure_high_state(self, callback: Any) -> bool:
        pending = self._pending_pressure_drop_callbacks
        if callback not in pending and (self.qsize() >= self.pressure_high_size or self._bytes_high()):
            pending.add(callback)
            self.on_pressure_high()
            return True
        return False

    def maybe_endorse_pressure_drop(self) -> None:
        pending = self._pending_pressure_drop_callbacks
        if not pending:
            return
        size = self.qsize()
        if not size:  # empty: every partition waiting for the drop may fetch again
            for callback in pending:
                callback()
            pending.clear()
            self.on_pressure_drop()
        elif size <= self.pressure_drop_size and self._bytes_low():
            pending.pop()()  # the messages still queued bring the others' turn
            self.on_pressure_drop()
