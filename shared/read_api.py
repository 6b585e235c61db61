"""The score read API's requests and answers, independent of any web framework: parameters
validated here (a bad one is a 400 with a message), queries run by :class:`ScoreReads`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.schemas import Network, StorableDate

if TYPE_CHECKING:  # the Faust process parses requests without importing ClickHouse or pandas
    from shared.clickhouse.score_reads import ScoreReads

MAX_PAGE = 1_000
MAX_OFFSET = 1_000_000  # pages within one batch; deeper than any day's alerts


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

    what: Literal["scores", "clusters", "alert"]
    page: PageQuery | None = None
    alert_id: str | None = None


def parse_page(params: dict[str, str]) -> PageQuery:
    try:
        return PageQuery.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'query'}: {e['msg']}"
                             for e in exc.errors())
        raise BadRequest(problems) from None


def answer(reads: ScoreReads, request: ReadRequest, default_version: str) -> dict[str, Any]:
    if request.what == "alert":
        rows = reads.alert_history(request.alert_id or "")
        if not rows:
            raise NotFound(f"no scores for alert {request.alert_id!r}")
        return {"alert_id": request.alert_id, "scores": rows}
    page = request.page
    assert page is not None
    version = page.model_version or default_version
    if request.what == "scores":
        items, total = reads.ranked_alerts(page.network, page.date, page.window_days, version,
                                           page.limit, page.offset, page.suppressed)
    else:
        items, total = reads.ranked_clusters(page.network, page.date, page.window_days, version,
                                             page.limit, page.offset)
    return {"network": page.network, "date": page.date.isoformat(), "window_days": page.window_days,
            "model_version": version, "total": total, "limit": page.limit, "offset": page.offset,
            "items": items}
