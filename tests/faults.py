"""Fault injection at the sink interface (AMLSCORE_STREAM_SINK=tests.faults:flaky_sink).

The wrapped sink fails every write for FLAKY_SINK_FAIL_SECONDS after its first write attempt,
then behaves; FLAKY_SINK_DELAY_SECONDS slows every write (to stop a worker mid-stream);
FLAKY_SINK_HANG=alert|cluster makes every write of that kind hang (a stuck lane). Each
successful alert write appends the written alert ids to FLAKY_SINK_LOG, so a test can compare
what was written with what the broker says was committed."""

from __future__ import annotations

import os
import threading
import time


class FlakySink:
    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.fail_for = float(os.environ.get("FLAKY_SINK_FAIL_SECONDS", "0"))
        self.log_path = os.environ.get("FLAKY_SINK_LOG")
        self.delay = float(os.environ.get("FLAKY_SINK_DELAY_SECONDS", "0"))
        self.hang = os.environ.get("FLAKY_SINK_HANG", "")
        self.first_attempt: float | None = None
        self.failures = 0

    def _maybe_fail(self, kind: str) -> None:
        if kind == self.hang:
            threading.Event().wait()
        time.sleep(self.delay)
        now = time.monotonic()
        if self.first_attempt is None:
            self.first_attempt = now
        if now - self.first_attempt < self.fail_for:
            self.failures += 1
            raise ConnectionError(f"injected sink outage (failure {self.failures})")

    def write_alerts(self, alerts, scores, scored_at) -> None:  # noqa: ANN001
        self._maybe_fail("alert")
        self.inner.write_alerts(alerts, scores, scored_at)
        if self.log_path:
            with open(self.log_path, "a") as log:
                log.write("".join(f"{a}\n" for a in scores["alert_id"]))

    def write_clusters(self, scores, scored_at) -> None:  # noqa: ANN001
        self._maybe_fail("cluster")
        self.inner.write_clusters(scores, scored_at)

    def ping(self) -> None:
        self.inner.ping()

    def __getattr__(self, name: str):  # noqa: ANN204 - the rest of the sink, as it is
        return getattr(self.inner, name)


def flaky_sink(inner) -> FlakySink:  # noqa: ANN001
    return FlakySink(inner)
