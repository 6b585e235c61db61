"""What the `amlscore` command modules share: date options, range resolution, the context."""

from __future__ import annotations

import datetime as dt

import click

from shared.errors import AmlScoreError
from shared.settings import load_settings


def parse_date(_ctx, _param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not YYYY-MM-DD") from exc


def parse_moment(_ctx, _param, value: str | None) -> dt.datetime | None:
    """An ISO 8601 time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2025-01-10T00:00:00Z)") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


network_option = click.option("--network", "networks", multiple=True,
                              help="Network (repeatable); default: every network present.")
start_option = click.option("--start", callback=parse_date, help="First processing date, YYYY-MM-DD.")
end_option = click.option("--end", callback=parse_date, help="Last processing date (inclusive).")
window_option = click.option("--window-days", default=7, show_default=True, type=click.IntRange(1))


def ordered(start: dt.date | None, end: dt.date | None) -> None:
    if start is not None and end is not None and start > end:
        raise click.UsageError(f"--start {start} is after --end {end}")


def app_context():
    """The context of a batch command, with the ClickHouse deadline watched: a call that runs
    past AMLSCORE_CLICKHOUSE_TIMEOUT ends the command with one line naming it (exit 1)."""
    from amlscore.failures import quiet_libraries
    from shared.clickhouse.deadline import Deadline
    from shared.context import Context
    quiet_libraries()  # the one line of a failure says it; the client libraries need not
    settings = load_settings()
    Deadline(settings.clickhouse_timeout, _overdue).start()
    return Context(settings)


def _overdue(seconds: float, what: str) -> None:
    import os
    import sys
    command = click.get_current_context(silent=True)
    name = command.command_path if command is not None else "amlscore"
    sys.stderr.write(f"error: ClickHouse did not answer within {seconds:.0f}s "
                     f"(AMLSCORE_CLICKHOUSE_TIMEOUT) in `{name}`, during {what}; the engine is "
                     "stuck or overloaded: re-run the command (backfill resumes where it stopped)\n")
    sys.stderr.flush()
    os._exit(1)  # the stuck call holds its thread: nothing else can end the process


def resolve_range(ctx, networks, start, end, window_days):
    networks = tuple(networks) or tuple(ctx.raw.networks())
    if not networks:
        raise AmlScoreError("ClickHouse holds no alerts yet; run `amlscore ingest` first")
    if start is None or end is None:
        found = ctx.raw.date_range(networks, window_days)
        if found is None:
            raise AmlScoreError(f"no alerts for {','.join(networks)} with window {window_days}")
        start, end = start or found[0], end or found[1]
    ordered(start, end)
    return networks, start, end


def ground_truth(ctx, as_of=None):  # noqa: ANN001, ANN201
    """What compare and validate measure against: investigators' decisions made by ``as_of``
    (default now) where they exist, address labels elsewhere."""
    from batch.dataset import Labels
    return Labels("both", as_of, ctx.dispositions)
