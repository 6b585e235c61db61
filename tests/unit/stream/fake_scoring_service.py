"""A scoring service for the scoring-process tests: it does what the request's kind says."""

from __future__ import annotations

import os
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
        return orjson.dumps({"what": request.what, "alert_id": request.alert_id})
