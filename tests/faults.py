"""Fault injection at the sink interface (AMLSCORE_STREAM_SINK=tests.faults:flaky_sink).

The wrapped sink fails every write for FLAKY_SINK_FAIL_SECONDS after its first write attempt,
then behaves; FLAKY_SINK_DELAY_SECONDS slows every write (to stop a worker mid-stream). Each successful alert write appends the written alert ids to FLAKY_SINK_LOG, so a
test can compare what was written with what the broker says was committed."""

from __future__ import annotations

import os
import time


class FlakySink:
    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.fail_for = float(os.environ.get("FLAKY_SINK_FAIL_SECONDS", "5"))
        self.log_path = os.environ.get("FLAKY_SINK_LOG")
        self.delay = float(os.environ.get("FLAKY_SINK_DELAY_SECONDS", "0"))
        self.first_attempt: float | None = None
        self.failures = 0

    def _maybe_fail(self) -> None:
        time.sleep(self.delay)
        now = time.monotonic()
        if self.first_attempt is None:
            self.first_attempt = now
        if now - self.first_attempt < self.fail_for:
            self.failures += 1
            raise ConnectionError(f"injected sink outage (failure {self.failures})")

    def write_alerts(self, raw_alerts, scores, scored_at) -> None:  # noqa: ANN001
        self._maybe_fail()
        self.inner.write_alerts(raw_alerts, scores, scored_at)
        if self.log_path:
            with open(self.log_path, "a") as log:
                log.write("".join(f"{a}\n" for a in scores["alert_id"]))

    def write_clusters(self, scores, scored_at) -> None:  # noqa: ANN001
        self._maybe_fail()
        self.inner.write_clusters(scores, scored_at)

    def ping(self) -> None:
        self.inner.ping()


def flaky_sink(inner) -> FlakySink:  # noqa: ANN001
    return FlakySink(inner)
