"""`amlscore` commands for model governance: versions (list, promote, roll back), champion/challenger
(shadow, compare) and drift. Registered on the group in :mod:`amlscore.cli`."""

from __future__ import annotations

from pathlib import Path

import click

from amlscore.cli_common import (
    app_context,
    end_option,
    ground_truth,
    network_option,
    ordered,
    resolve_range,
    start_option,
    window_option,
)
from amlscore.failures import one_line_errors
from shared.errors import AmlScoreError


@click.command()
@one_line_errors
def models() -> None:
    """List trained model versions, their held-out figures, and which one is promoted."""
    from batch.model_admin import list_versions
    ctx = app_context()
    versions = list_versions(ctx.models)
    if not versions:
        raise AmlScoreError(f"no trained models in {ctx.models.models_dir}; run `amlscore train`")
    click.echo(f"{'':2}{'version':<28}{'trained on':<40}{'AUC':>8}{'NDCG@10':>9}  rank by     "
               f"clusters    validation")
    for v in versions:
        click.echo(f"{'*' if v.promoted else ' ':2}{v.version:<28}{v.training_range:<40}"
                   f"{v.auc if v.auc is not None else '-':>8}{v.ndcg if v.ndcg is not None else '-':>9}"
                   f"  {v.rank_source:<11} {v.clusters:<11} {v.validation}")
    click.echo("* promoted")


@click.command()
@click.argument("version")
@click.option("--force", is_flag=True, help="Promote even if the version failed or never passed "
                                            "validation (recorded as forced).")
@one_line_errors
def promote(version, force) -> None:
    """Make VERSION the model every scorer uses (running workers reload it on their next poll),
    once it has passed `amlscore validate` (run now if it never was)."""
    from batch.model_admin import promote as run_promote
    from batch.model_admin import require_known
    ctx = app_context()
    require_known(ctx.models, version)
    if not force:
        _require_validation(ctx, version)
    was_challenger = ctx.models.shadow_version() == version
    trouble = run_promote(ctx.models, lambda: ctx.registry_table, version, forced=force)
    click.echo(f"promoted {version}" + (" (forced: its validation did not pass)" if force else "")
               + (" (it was the challenger: the shadow ends)" if was_challenger else ""))
    _said_registry(trouble, f"amlscore promote {version}")


def _require_validation(ctx, version: str) -> None:  # noqa: ANN001
    """A version that passed promotes at once (no engine needed); one that failed is refused; one
    never validated is validated now, when the engine can be opened."""
    from amlscore.cli_validation import range_data, run_validation, say
    from batch.validation.run import held_out_dates
    from batch.validation.status import verdict
    from shared.errors import ClickHouseUnavailable
    status, line = verdict(ctx.models, version)
    if status == "passed":
        return
    if status == "failed":
        raise AmlScoreError(f"{line}; not promoted (--force promotes it anyway, recorded as forced)")
    ctx.models.load(version)
    networks, start, end, window = held_out_dates(ctx.models, version)
    try:
        data, span = range_data(ctx, networks, start, end, window)
    except ClickHouseUnavailable as exc:
        raise AmlScoreError(f"{line} once ClickHouse can be opened (now it cannot: another "
                            "process, a worker, holds the embedded engine?), or promote with --force"
                            ) from exc
    click.echo(f"{version} was never validated: validating it on its held-out dates {start}..{end}")
    report = run_validation(ctx, version, ctx.models.current_version(), data, span)
    say(report)
    if not report["passed"]:
        raise AmlScoreError(f"{version} failed validation: {report['failed_line']}; not promoted "
                            "(--force promotes it anyway, recorded as forced)")


@click.command()
@one_line_errors
def rollback() -> None:
    """Promote again the version that was promoted before the current one."""
    from batch.model_admin import rollback as run_rollback
    ctx = app_context()
    version, trouble = run_rollback(ctx.models, lambda: ctx.registry_table)
    click.echo(f"rolled back to {version}")
    _said_registry(trouble, f"amlscore promote {version}")


def _said_registry(trouble: str | None, again: str) -> None:
    """The pointer moved (workers follow it); only the model_registry mirror may lag."""
    if trouble:
        click.echo(f"model_registry not updated yet ({trouble}); run `{again}` again once "
                   "ClickHouse can be opened", err=True)


@click.command()
@network_option
@start_option
@end_option
@window_option
@click.option("--model-version", default=None, help="Default: the promoted version.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report directory; default: AMLSCORE_HOME/drift/VERSION_START_END.")
@one_line_errors
def drift(networks, start, end, window_days, model_version, out) -> None:
    """Feature drift of ingested alerts against the model's training data (PSI per feature)."""
    ordered(start, end)
    from batch.drift_report import drift_report, worst
    from shared.drift import DriftThresholds
    ctx = app_context()
    scoring = ctx.scoring(model_version)
    networks, start, end = resolve_range(ctx, networks, start, end, window_days)
    thresholds = DriftThresholds(ctx.settings.drift_psi_watch, ctx.settings.drift_psi_act)
    out = out or ctx.settings.home / "drift" / f"{scoring.model_version}_{start}_{end}"
    report = drift_report(ctx.raw, scoring, networks, start, end, window_days, thresholds, out)
    statuses = [v["status"] for v in report["features"].values()]
    click.echo(f"model {scoring.model_version}, {report['rows']} alerts {start}..{end}: "
               f"{statuses.count('act')} features act (PSI > {thresholds.act}), "
               f"{statuses.count('watch')} watch (> {thresholds.watch}), {statuses.count('stable')} stable")
    for name, value in worst(report, 5):
        click.echo(f"  {value['psi']:8.4f}  {value['status']:<7} {name}  (missing {value['missing']:.1%}, "
                   f"training {value['reference_missing']:.1%})")
    click.echo(f"report: {out / 'drift.json'}")


@click.command()
@click.argument("version", required=False)
@click.option("--off", is_flag=True, help="Stop shadow scoring.")
@one_line_errors
def shadow(version, off) -> None:
    """Score with VERSION beside the promoted model (stream and backfill) into alert_scores_shadow."""
    if bool(version) == off:
        raise click.UsageError("give a VERSION, or --off")
    ctx = app_context()
    ctx.models.set_shadow(None if off else version)
    click.echo("shadow scoring off" if off else
               f"{version} scores in shadow beside {ctx.models.current_version()} (workers follow on "
               "their next model poll; never published)")


@click.command()
@network_option
@start_option
@end_option
@window_option
@click.option("--version", "challenger", default=None, help="Default: the shadow version.")
@click.option("--against", "against", default=None, help="The champion; default: the promoted version.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report directory; default: AMLSCORE_HOME/compare/CHAMPION_vs_CHALLENGER.")
@one_line_errors
def compare(networks, start, end, window_days, challenger, against, out) -> None:
    """Champion vs challenger on the alerts of a range: metrics, recall at the review capacity
    (investigators' decisions as ground truth where there are), score shift, rank agreement."""
    ordered(start, end)
    from batch.compare import TOP, compare_versions
    ctx = app_context()
    challenger = challenger or ctx.models.shadow_version()
    if not challenger:
        raise click.UsageError("no challenger: pass --version V or set one with `amlscore shadow V`")
    champion = ctx.scoring(against)
    networks, start, end = resolve_range(ctx, networks, start, end, window_days)
    out = out or ctx.settings.home / "compare" / f"{champion.model_version}_vs_{challenger}"
    r = compare_versions(ctx.raw, champion, ctx.scoring(challenger), networks, start, end,
                         window_days, out, ground_truth(ctx), ctx.settings.review_capacity)
    sources = r["labels"]
    click.echo(f"{r['alerts']} alerts ({r['labelled']} labelled: {sources['dispositions']} by "
               f"investigators' decisions, {sources['addresses']} by address labels) {start}..{end}")
    ranking = r["ranking"]["mean"]
    for name in ("champion", "challenger"):
        m = r["metrics"][name]
        click.echo(f"  {name:<10} {r[name]:<28} AUC {m['auc']}  PR-AUC {m['pr_auc']}  "
                   f"NDCG@10 {ranking[f'{name}_ndcg@10']}  precision@50 {ranking[f'{name}_precision@50']}")
    for name in ("champion", "challenger"):
        at = r["capacity"][name]
        click.echo(f"  {name:<10} recall at {at['review_capacity']} alerts/day {at['recall_at_capacity']} "
                   f"(precision {at['precision_at_capacity']})")
    click.echo(f"  score shift: mean {r['score_shift']['mean']:+.4f}, mean |shift| "
               f"{r['score_shift']['mean_abs']:.4f}; top-{TOP} overlap {r['rank_agreement'][f'top{TOP}_overlap_mean']}")
    click.echo(f"report: {out / 'compare.json'}")



COMMANDS = (models, promote, rollback, drift, shadow, compare)
