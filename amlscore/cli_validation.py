"""`amlscore validate`, and the gate that train and promote pass a version through."""

from __future__ import annotations

import click

from amlscore.cli_common import (
    app_context,
    end_option,
    ground_truth,
    network_option,
    ordered,
    start_option,
    window_option,
)
from amlscore.failures import one_line_errors
from shared.errors import AmlScoreError


def validation_config(settings):  # noqa: ANN001, ANN201
    from batch.validation.run import ValidationConfig
    from shared.scoring import ScoringPolicy
    return ValidationConfig(ScoringPolicy.from_settings(settings), settings.review_capacity,
                            settings.validate_runs)


def run_validation(ctx, version: str, champion: str | None, data, span: dict) -> dict:  # noqa: ANN001
    from batch.validation.run import validate
    return validate(ctx.models, version, champion, data, span, validation_config(ctx.settings),
                    ctx.client, ctx.target.database,
                    progress=lambda step: click.echo(f"… {step}", err=True))


def range_data(ctx, networks, start, end, window_days):  # noqa: ANN001, ANN201
    """(the alerts of a range with their labels — decisions where there are, address labels
    elsewhere — and the range as the report records it)."""
    from batch.dataset import load_training_data
    data = load_training_data(ctx.raw, networks, start, end, window_days, ground_truth(ctx))
    return data, {"networks": list(networks), "start": start.isoformat(), "end": end.isoformat(),
                  "window_days": window_days}


def say(report: dict) -> None:
    """The verdict in a few lines: each check, then recall at the review capacity."""
    for name, check in report["checks"].items():
        click.echo(f"  [{'pass' if check['passed'] else 'FAIL'}] {name:<13} {check['why']}".rstrip())
    at = report["capacity"]["candidate"]
    click.echo(f"  recall at {at['review_capacity']} alerts/day: {at['recall_at_capacity']} "
               f"(precision {at['precision_at_capacity']})")


def train_gate(ctx, reports: list[dict]):  # noqa: ANN001, ANN201
    """What `amlscore train` validates its version with before promoting it (data in hand);
    the report is appended to ``reports`` for the command to print after its own summary."""
    def gate(version: str, data, held_dates: list[str]) -> tuple[bool, str]:  # noqa: ANN001
        from batch.validation.run import restrict
        span = {"networks": sorted(set(data.alerts["network"])), "start": min(held_dates),
                "end": max(held_dates), "window_days": int(data.alerts["window_days"].iloc[0])}
        report = run_validation(ctx, version, ctx.models.current_version(),
                                restrict(data, held_dates), span)
        reports.append(report)
        return report["passed"], report["failed_line"] or ""
    return gate


@click.command()
@click.argument("version")
@network_option
@start_option
@end_option
@window_option
@click.option("--against", "champion", default=None, help="Default: the promoted version.")
@one_line_errors
def validate(version, networks, start, end, window_days, champion) -> None:
    """Check VERSION before it scores: integrity, determinism, behaviour, ground truth against
    the champion, performance and serving; exit 1 when a check fails."""
    ordered(start, end)
    from batch.model_admin import require_known
    from batch.validation.run import held_out_dates
    from batch.validation.status import report_dir
    ctx = app_context()
    require_known(ctx.models, version)
    ctx.models.load(version)  # a version that does not load fails here, in one line
    if start is None and end is None:
        held_networks, start, end, window_days = held_out_dates(ctx.models, version)
        networks = networks or held_networks
    elif start is None or end is None:
        raise click.UsageError("give both --start and --end (default: the version's held-out dates)")
    data, span = range_data(ctx, tuple(networks) or tuple(ctx.raw.networks()), start, end, window_days)
    report = run_validation(ctx, version, champion or ctx.models.current_version(), data, span)
    say(report)
    click.echo(f"report: {report_dir(ctx.models, version) / 'validation.json'}")
    if not report["passed"]:
        raise AmlScoreError(f"{version} failed validation: {report['failed_line']}")
    click.echo(f"{version} passed validation")


COMMANDS = (validate,)
