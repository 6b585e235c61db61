"""What liveness is made of: the event loop ticks, and no batch is stuck."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    stall_timeout: float = 300.0
    tick_timeout: float = 15.0
    last_tick: float = field(default_factory=time.monotonic)
    in_flight_since: float | None = None
    batches: int = 0
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # last acked offset

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def begin(self) -> None:
        self.in_flight_since = time.monotonic()

    def done(self, offsets: dict[tuple[str, int], int]) -> None:
        self.in_flight_since = None
        self.batches += 1
        for tp, offset in offsets.items():
            if offset > self.positions.get(tp, -1):
                self.positions[tp] = offset

    def liveness(self) -> tuple[bool, dict]:
        now = time.monotonic()
        tick_age = now - self.last_tick
        batch_age = now - self.in_flight_since if self.in_flight_since is not None else 0.0
        problems = []
        if tick_age > self.tick_timeout:
            problems.append(f"event loop has not ticked for {tick_age:.0f}s")
        if batch_age > self.stall_timeout:
            problems.append(f"a batch has been in flight for {batch_age:.0f}s (sink or broker down?)")
        return not problems, {"status": "ok" if not problems else "stalled", "problems": problems,
                              "batches": self.batches, "tick_age_s": round(tick_age, 3),
                              "in_flight_s": round(batch_age, 3)}
