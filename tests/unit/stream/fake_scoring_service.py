"""A scoring service for the scoring-process tests: it does what the request's kind says."""

from __future__ import annotations

import os
import threading
import time

import orjson

from stream.boundary import (
    Housekeeping,
    ModelStatus,
    ScoringOutcome,
    ScoringRequest,
    SinkUnavailable,
)


class FakeScoringService:
    def __init__(self, settings) -> None:  # noqa: ANN001
        if os.environ.get("FAKE_SCORING_FAILS_AT_START"):
            raise SinkUnavailable("ClickHouse is down")
        # As the embedded engine does when it opens: threads of its own, one of which raises its
        # own priority to the highest where that is allowed (root, CAP_SYS_NICE).
        self._engine = threading.Thread(target=threading.Event().wait, name="fake-engine", daemon=True)
        self._engine.start()
        started = threading.Event()
        self._raised = threading.Thread(target=self._raise_itself, args=(started,), daemon=True)
        self._raised.start()
        started.wait()

    @staticmethod
    def _raise_itself(started: threading.Event) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -20)
        except OSError:
            pass  # not allowed: it stays where it started
        started.set()
        threading.Event().wait()

    def status(self) -> ModelStatus:
        return ModelStatus("fake-v1", ("ethereum",), 0)

    def process(self, request: ScoringRequest) -> ScoringOutcome:
        if request.kind == "die":
            os._exit(3)
        if request.kind == "fail":
            raise SinkUnavailable("ClickHouse is down")
        if request.kind == "slow":
            time.sleep(0.5)
        return ScoringOutcome(request.kind, scored=len(request.batch.values))

    def housekeeping(self, due) -> Housekeeping:  # noqa: ANN001
        return Housekeeping(self.status(), drift={"rows": 0} if "drift" in due else None)

    def read(self, request) -> dict:  # noqa: ANN001 - called from the child's read threads
        if request.alert_id == "slow":
            time.sleep(1.0)
        if request.alert_id == "niceness":  # of this read thread, the main thread and the engine's
            def niceness(thread: threading.Thread) -> int:
                return os.getpriority(os.PRIO_PROCESS, thread.native_id)
            return orjson.dumps({"read": niceness(threading.current_thread()),
                                 "main": niceness(threading.main_thread()),
                                 "engine": niceness(self._engine),
                                 "raised": niceness(self._raised)})
        return orjson.dumps({"what": request.what, "alert_id": request.alert_id})
