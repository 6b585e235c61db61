"""The worker's Prometheus metrics (prometheus_client, one registry per worker).

Everything is counted in the Faust process: the scoring process reports what it did, and the
time each phase took, in the outcome of every call, so no metric has to cross processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream.boundary import ScoringOutcome

prometheus_client.disable_created_metrics()
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# (name, help, [(labels, value), …]) read when /metrics is served
GaugeReading = tuple[str, str, Iterable[tuple[dict[str, str], float]]]


class _Gauges(Collector):
    def __init__(self, read: Callable[[], Iterable[GaugeReading]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, help_, samples in self.read():
            samples = list(samples)
            family = GaugeMetricFamily(name, help_, labels=sorted(samples[0][0]) if samples else [])
            for labels, value in samples:
                family.add_metric([labels[k] for k in sorted(labels)], value)
            yield family


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.events_in = Counter("amlscore_events_in", "Messages taken from input topics",
                                 ["topic"], registry=r)
        self.scored = Counter("amlscore_scored", "Alerts and clusters scored and written",
                              ["kind"], registry=r)
        self.unscored = Counter("amlscore_unscored",
                                "Valid events acknowledged unscored (a model without cluster_scorer)",
                                ["kind"], registry=r)
        self.dead_lettered = Counter("amlscore_dead_lettered", "Alerts or messages sent to the DLQ",
                                     ["reason"], registry=r)
        self.sink_failures = Counter("amlscore_sink_failures",
                                     "Failed ClickHouse writes and lookups (retried)", registry=r)
        self.publish_failures = Counter("amlscore_publish_failures", "Failed produces (retried)",
                                        registry=r)
        self.model_reloads = Counter("amlscore_model_reloads", "Model reload attempts", ["result"],
                                     registry=r)
        self.decisions = Counter("amlscore_decisions", "Investigators' decisions stored, per "
                                 "disposition and way in (topic or API)", ["disposition", "source"],
                                 registry=r)
        self.reads = Counter("amlscore_api_reads", "Read-API requests by HTTP status", ["status"],
                             registry=r)
        self.batch_seconds = Histogram("amlscore_batch_seconds", "Batch time from take to ack",
                                       ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.event_to_score = Histogram(
            "amlscore_event_to_score_seconds", "Producer timestamp of an alert to its ack",
            buckets=LATENCY_BUCKETS, registry=r)
        self.phase_seconds = Counter(
            "amlscore_phase_seconds", "Time spent per phase of the batches (the per-batch trace)",
            ["kind", "phase"], registry=r)
        self.batches = Counter("amlscore_batches", "Batches acknowledged", ["kind"], registry=r)
        self.shadow = Gauge("amlscore_shadow_alerts", "Alerts the challenger scored, left out when "
                            "behind, or failed on (running totals of the scoring process)",
                            ["result"], registry=r)

    def gauges(self, read: Callable[[], Iterable[GaugeReading]]) -> None:
        self.registry.register(_Gauges(read))

    def observe_phases(self, kind: str, outcome: ScoringOutcome, sent_at: float,
                       received_at: float) -> None:
        """The scoring process's own phases, and the two hops around them (wall clock): "send"
        (handing the micro-batch over until the scoring process starts on it) and "receive" (its
        answer until this process's event loop takes it up)."""
        for phase, seconds in outcome.phases.items():
            self.phase_seconds.labels(kind=kind, phase=phase).inc(seconds)
        if outcome.started_at:
            self.phase_seconds.labels(kind=kind, phase="send").inc(max(0.0, outcome.started_at - sent_at))
            self.phase_seconds.labels(kind=kind, phase="receive").inc(
                max(0.0, received_at - outcome.finished_at))

    def batch_done(self, kind: str, timestamps: Sequence[Sequence[float | None]],
                   outcome: ScoringOutcome, publish_seconds: float, ack_seconds: float,
                   age_seconds: float, now: float) -> None:
        """A micro-batch acknowledged. ``timestamps``: its events' producer timestamps (per chunk);
        ``age_seconds``: since its first event was taken; ``now``: wall clock."""
        if kind != "disposition":
            self.scored.labels(kind=kind).inc(outcome.scored)
        for disposition, n in outcome.decisions.items():
            self.decisions.labels(disposition=disposition, source="stream").inc(n)
        self.shadow_totals(outcome.shadow)
        if outcome.unscored:
            self.unscored.labels(kind=kind).inc(outcome.unscored)
        for dead in outcome.dead:
            self.dead_lettered.labels(reason=dead.reason).inc()
        self.batches.labels(kind=kind).inc()
        self.phase_seconds.labels(kind=kind, phase="publish").inc(publish_seconds)
        self.phase_seconds.labels(kind=kind, phase="ack").inc(ack_seconds)
        self.batch_seconds.labels(kind=kind).observe(age_seconds)
        if kind == "alert":
            observe = self.event_to_score.observe
            for stamps in timestamps:
                for stamp in stamps:
                    if stamp:
                        observe(now - stamp)

    def shadow_totals(self, totals: dict[str, int]) -> None:
        """The challenger's running totals, as the scoring process last reported them (with a
        micro-batch of alerts, or its housekeeping when idle)."""
        for result, total in totals.items():
            self.shadow.labels(result=result).set(total)

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)

