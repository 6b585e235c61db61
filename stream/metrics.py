"""A few Prometheus metrics, rendered in the text exposition format (no client library)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + body + "}"


class Counter:
    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self.values: dict[Labels, float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            self.values[tuple(sorted(labels.items()))] += amount

    def value(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def total(self) -> float:
        return sum(self.values.values())

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(labels)} {value}"


class SharedCounter(Counter):
    """A counter that another process increments (the scoring process's sink retries), read live
    by the one that serves /metrics. One total, no labels."""

    def __init__(self, name: str, help_: str, shared) -> None:  # noqa: ANN001 - mp.Value('d')
        super().__init__(name, help_)
        self.shared = shared

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        with self.shared.get_lock():
            self.shared.value += amount

    def value(self, **labels: str) -> float:
        return float(self.shared.value)

    def total(self) -> float:
        return float(self.shared.value)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        yield f"{self.name} {float(self.shared.value)}"


class Histogram:
    def __init__(self, name: str, help_: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.buckets = name, help_, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        with self._lock:
            for value in values:
                self.counts[bisect.bisect_left(self.buckets, value)] += 1
                self.sum += value
                self.count += 1

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            yield f'{self.name}_bucket{{le="{bound}"}} {running}'
        yield f'{self.name}_bucket{{le="+Inf"}} {self.count}'
        yield f"{self.name}_sum {self.sum}"
        yield f"{self.name}_count {self.count}"


class WorkerMetrics:
    def __init__(self, shared_sink_failures=None) -> None:  # noqa: ANN001 - mp.Value('d')
        self.events_in = Counter("amlscore_events_in_total", "Messages taken from input topics")
        self.scored = Counter("amlscore_scored_total", "Alerts and clusters scored and written")
        self.dead_lettered = Counter("amlscore_dead_lettered_total", "Messages sent to the DLQ")
        help_ = "Failed sink writes and lookups (retried)"
        self.sink_failures: Counter = (
            SharedCounter("amlscore_sink_failures_total", help_, shared_sink_failures)
            if shared_sink_failures is not None
            else Counter("amlscore_sink_failures_total", help_))
        self.publish_failures = Counter("amlscore_publish_failures_total", "Failed produces (retried)")
        self.model_reloads = Counter("amlscore_model_reloads_total", "Model reload attempts")
        self.batch_seconds = Histogram("amlscore_batch_seconds", "Batch time from take to ack")
        self.event_to_score = Histogram(
            "amlscore_event_to_score_seconds", "Producer timestamp of an alert to its ack")
        self.gauges: dict[str, Callable[[], Iterable[tuple[Labels, float]]]] = {}

    def gauge(self, name: str, read: Callable[[], Iterable[tuple[Labels, float]]]) -> None:
        self.gauges[name] = read

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.events_in, self.scored, self.dead_lettered, self.sink_failures,
                       self.publish_failures, self.model_reloads, self.batch_seconds,
                       self.event_to_score):
            lines.extend(metric.render())
        for name, read in sorted(self.gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            for labels, value in read():
                lines.append(f"{name}{_labels(labels)} {value}")
        return "\n".join(lines) + "\n"
