"""The API's queries (and the decisions it stores), apart from the micro-batches: each read
thread has a ClickHouse client of its own (a second client on the embedded engine runs beside the scoring
one; on a server, a session of its own), and each query runs under the read limits. What an
answer says of a failure is a short reason, never the engine's text (that goes to the log)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import orjson

from shared.clickhouse.connection import ClickHouseTarget, connect
from shared.clickhouse.disposition_store import DispositionStore
from shared.clickhouse.score_reads import ScoreReads, read_limits
from shared.read_api import NotFound, ReadRequest, answer
from shared.settings import Settings
from stream.boundary import SinkUnavailable
from stream.scoring.priority import MAX_NICENESS, READ_NICENESS

log = logging.getLogger(__name__)
TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED = 159, 241


class ReadQueries:
    def __init__(self, settings: Settings, target: ClickHouseTarget,
                 default_version: Callable[[], str]) -> None:
        self.target = target
        self.default_version = default_version
        # The engine's threads that run a read sit below the scoring process as its read
        # threads do (stream.scoring.priority).
        self.limits = read_limits(settings.api_query_timeout, settings.api_max_memory_mb << 20,
                                  min(MAX_NICENESS, settings.scoring_nice + READ_NICENESS))
        self.timeout = settings.api_query_timeout
        self._local = threading.local()

    def _stores(self) -> tuple[ScoreReads, DispositionStore]:
        stores = getattr(self._local, "stores", None)
        if stores is None:
            client = connect(self.target, create_database=False)
            stores = self._local.stores = (ScoreReads(client, self.target.database, self.limits),
                                           DispositionStore(client, self.target.database))
        return stores

    def decision_figures(self) -> dict:
        """What the decision gauges show (a scan under the read limits, on this thread's client)."""
        return self._stores()[1].figures(self.limits)

    def read(self, request: ReadRequest) -> bytes:
        """The answer as JSON, made here in a read thread (not in the Faust process's event
        loop). ClickHouse failing is :class:`SinkUnavailable`, whose message is for the client."""
        try:
            return orjson.dumps(answer(*self._stores(), request, self.default_version()))
        except NotFound:
            raise
        except Exception as exc:  # noqa: BLE001 - classified for the client, detailed in the log
            code = getattr(exc, "code", None)
            text = str(exc)
            if code == TIMEOUT_EXCEEDED or "TIMEOUT_EXCEEDED" in text:
                reason = f"the query took longer than {self.timeout:g}s (AMLSCORE_API_QUERY_TIMEOUT)"
            elif code == MEMORY_LIMIT_EXCEEDED or "MEMORY_LIMIT_EXCEEDED" in text:
                reason = "the query needed more memory than AMLSCORE_API_MAX_MEMORY_MB allows"
            else:
                reason = "ClickHouse did not answer"
                self._local.stores = None  # a new client next time
            log.warning("read %s failed: %s", request.what, text.splitlines()[0][:300] if text else exc)
            raise SinkUnavailable(reason) from None
