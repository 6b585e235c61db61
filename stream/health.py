"""What liveness and readiness are made of. Both answer from state held in the Faust process,
so neither waits behind a batch.

- live: the event loop ticks; no lane holds an event unacknowledged longer than the stall
  timeout (per lane: a stuck alert batch and a stuck cluster batch both show); the dispatcher
  runs; the scoring process is alive or being restarted.
- ready: a model is loaded, the store answered its last write or ping, and the consumer has
  joined its group (partitions assigned: possibly none, when the group has more workers than
  partitions). Before the join, events sent would wait for it: a rolling deploy, the demo and
  the benchmarks wait for ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stream.pipeline import Pipeline
from stream.scoring_supervisor import ScoringProcess


@dataclass
class Health:
    pipeline: Pipeline
    scoring_process: ScoringProcess
    stall_timeout: float = 300.0
    tick_timeout: float = 15.0
    last_tick: float = field(default_factory=time.monotonic)
    assignment: Callable[[], Iterable[Any]] = field(default=lambda: ())  # the consumer's TPs
    joined: bool = False      # the group was joined at least once
    consuming: bool = False   # partitions held now (False while a rebalance is under way)

    def assigned(self) -> None:
        self.joined = self.consuming = True

    def revoked(self) -> None:
        self.consuming = False

    def tick(self) -> None:
        self.last_tick = time.monotonic()

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        tick_age = now - self.last_tick
        problems = []
        if tick_age > self.tick_timeout:
            problems.append(f"event loop has not ticked for {tick_age:.0f}s")
        ages = {kind: round(lane.oldest_age(now), 3) for kind, lane in self.pipeline.lanes.items()}
        for kind, age in ages.items():
            if age > self.stall_timeout:
                problems.append(f"{kind} lane: an event has waited {age:.0f}s to be acknowledged "
                                f"(store or broker down?)")
        if not self.pipeline.alive():
            problems.append("the dispatcher is not running")
        if self.scoring_process.failed:
            problems.append(self.scoring_process.failed)
        return not problems, {
            "status": "ok" if not problems else "stalled", "problems": problems,
            "tick_age_s": round(tick_age, 3), "oldest_unacked_s": ages,
            "unacked_events": {k: lane.unacked_events for k, lane in self.pipeline.lanes.items()},
            "scoring_process": {"pid": self.scoring_process.pid, "restarts": len(self.scoring_process.restarts)},
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        status = self.scoring_process.status
        problems = [] if status else ["no model loaded"]
        if self.pipeline.sink_error:
            problems.append(f"ClickHouse unavailable: {self.pipeline.sink_error}")
        if self.scoring_process.failed:
            problems.append(self.scoring_process.failed)
        if not self.joined:
            problems.append("joining the consumer group: no partitions assigned yet")
        partitions: dict[str, int] = {}
        for tp in self.assignment():
            partitions[tp.topic] = partitions.get(tp.topic, 0) + 1
        return not problems, {
            "status": "ready" if not problems else "not ready", "problems": problems,
            "consuming": self.consuming, "assigned_partitions": partitions,
            "model_version": status.version if status else None,
            "model_reload_failures": status.reload_failures if status else 0,
            # The promoted version did not load: the worker scores with the one named here.
            "model_fallback": status.fallback if status else None,
        }
