"""Where integration tests get their services: one named by the environment, else a
testcontainers one where a Docker engine answers, else the local one (Tansu / chdb)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        return f"no Docker engine ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def external(name: str) -> str | None:
    return os.environ.get(name) or None


@dataclass(frozen=True)
class KafkaTarget:
    """A broker plus topic and group names of this test's own, so tests can share a broker."""

    bootstrap: str
    kind: str
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def topics(self) -> dict[str, str]:
        return {"alerts": f"aml.alerts.{self.suffix}", "clusters": f"aml.clusters.{self.suffix}",
                "scores": f"aml.alert-scores.{self.suffix}", "dlq": f"aml.alerts.dlq.{self.suffix}",
                "dispositions": f"aml.dispositions.{self.suffix}"}

    @property
    def group(self) -> str:
        return f"amlscore-worker-{self.suffix}"

    def env(self) -> dict[str, str]:
        return {"AMLSCORE_KAFKA_BOOTSTRAP": self.bootstrap, "AMLSCORE_WORKER_ID": self.group,
                **{f"AMLSCORE_{k.upper()}_TOPIC": v for k, v in self.topics.items()}}


@contextlib.contextmanager
def kafka(log_path=None) -> Iterator[KafkaTarget]:  # noqa: ANN001
    """AMLSCORE_TEST_KAFKA_BOOTSTRAP, else testcontainers Kafka with Docker, else Tansu."""
    named = external("AMLSCORE_TEST_KAFKA_BOOTSTRAP")
    if named:
        yield KafkaTarget(named, "external")
        return
    if docker_unavailable_reason() is None:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield KafkaTarget(container.get_bootstrap_server(), "testcontainers")
        return
    from amlscore.local_broker import LocalBroker

    with LocalBroker(log_path=log_path) as broker:
        yield KafkaTarget(broker.bootstrap, "tansu")
