"""The worker's API requests and answers, independent of any web framework: the score reads, the
investigators' queue and their decisions. Parameters and bodies are validated here (a bad one
is a 400 with a message); queries run by :class:`ScoreReads`, decisions stored by
:class:`DispositionStore`, both in the process that holds ClickHouse."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.schemas import DispositionEvent, DispositionPost, Network, StorableDate

if TYPE_CHECKING:  # the Faust process parses requests without importing ClickHouse or pandas
    from shared.clickhouse.disposition_store import DispositionStore
    from shared.clickhouse.score_reads import ScoreReads

MAX_PAGE = 1_000
MAX_OFFSET = 1_000_000  # pages within one batch; deeper than any day's alerts
MAX_DECISION_BYTES = 16_384  # a decision's body: its note is at most 4,096 characters


class BadRequest(ValueError):
    """A parameter is missing or malformed: the message says which and why."""


class NotFound(LookupError):
    pass


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Network
    date: StorableDate
    window_days: Annotated[int, Field(ge=1, le=3650)] = 7
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0
    model_version: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    suppressed: bool = True  # false: alerts marked suppressible are left out (/scores)


class ReadRequest(BaseModel):
    """What crosses to the process that holds ClickHouse."""

    what: Literal["scores", "clusters", "alert", "queue", "decide"]
    page: PageQuery | None = None
    alert_id: str | None = None
    decision: DispositionEvent | None = None


def _problems(exc: ValidationError, where: str) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or where}: {e['msg']}" for e in exc.errors())


def parse_page(params: dict[str, str]) -> PageQuery:
    try:
        return PageQuery.model_validate(params)
    except ValidationError as exc:
        raise BadRequest(_problems(exc, "query")) from None


def parse_decision(alert_id: str, body: bytes, analyst: str,
                   now: dt.datetime | None = None) -> DispositionEvent:
    """A decision from a POST body (JSON, :class:`DispositionPost`): the alert from the path,
    the analyst from the caller's token, ``decided_at`` the request's time unless given."""
    if len(body) > MAX_DECISION_BYTES:
        raise BadRequest(f"body: {len(body)} bytes > limit {MAX_DECISION_BYTES}")
    try:
        post = DispositionPost.model_validate_json(body or b"null")
        return DispositionEvent(alert_id=alert_id, analyst=analyst,
                                decided_at=post.decided_at or now or dt.datetime.now(dt.UTC),
                                **post.model_dump(exclude={"decided_at"}))
    except ValidationError as exc:
        raise BadRequest(_problems(exc, "body")) from None


def answer(reads: ScoreReads, decisions: DispositionStore, request: ReadRequest,
           default_version: str) -> dict[str, Any]:
    if request.what == "alert":
        alert_id = request.alert_id or ""
        rows, history = reads.alert_history(alert_id), decisions.history(alert_id, reads.limits)
        if not rows and not history:
            raise NotFound(f"no scores and no decisions for alert {alert_id!r}")
        return {"alert_id": alert_id, "scores": rows, "decisions": history}
    if request.what == "decide":
        assert request.decision is not None
        decisions.write([request.decision], "api")
        return {"stored": True, **request.decision.model_dump(mode="json")}
    page = request.page
    assert page is not None
    version = page.model_version or default_version
    if request.what == "queue":
        items, total = reads.queue(page.network, page.date, page.window_days, version,
                                   page.limit, page.offset)
    elif request.what == "scores":
        items, total = reads.ranked_alerts(page.network, page.date, page.window_days, version,
                                           page.limit, page.offset, page.suppressed)
    else:
        items, total = reads.ranked_clusters(page.network, page.date, page.window_days, version,
                                             page.limit, page.offset)
    return {"network": page.network, "date": page.date.isoformat(), "window_days": page.window_days,
            "model_version": version, "total": total, "limit": page.limit, "offset": page.offset,
            "items": items}
