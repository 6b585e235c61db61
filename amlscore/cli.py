"""`amlscore` — one console script, thin: it parses, calls the packages, and prints."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from amlscore import cli_dispositions, cli_governance, cli_stream, cli_validation
from amlscore.cli_common import (
    app_context,
    end_option,
    network_option,
    ordered,
    parse_date,
    parse_moment,
    resolve_range,
    start_option,
    window_option,
)
from amlscore.failures import one_line_errors
from shared.errors import AmlScoreError
from shared.settings import load_settings


@click.group()
def main() -> None:
    """amlscore: risk scores for blockchain AML alerts, streaming and batch."""


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--network", "networks", multiple=True, default=("ethereum",), show_default=True)
@click.option("--start", callback=parse_date, default="2025-01-01", show_default=True)
@click.option("--days", default=14, show_default=True, type=click.IntRange(1))
@click.option("--alerts-per-day", default=3000, show_default=True, type=click.IntRange(10))
@click.option("--window-days", default=7, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--labelled-share", default=0.35, show_default=True, type=click.FloatRange(0, 1),
              help="Share of addresses in the address-label file.")
@click.option("--dispositions", "with_decisions", is_flag=True,
              help="Also simulate the team's decisions on each day's top AMLSCORE_REVIEW_CAPACITY "
                   "alerts: OUT/dispositions.parquet, for `amlscore dispositions import`.")
@click.option("--decision-error-rate", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Share of simulated decisions that get the truth wrong.")
@click.option("--decision-delay-hours", default=36.0, show_default=True, type=click.FloatRange(0),
              help="Mean hours from a day's alerts to their decisions.")
@one_line_errors
def synth(out, networks, start, days, alerts_per_day, window_days, seed, labelled_share,
          with_decisions, decision_error_rate, decision_delay_hours) -> None:
    """Write synthetic SOT batches (with _truth.parquet beside each)."""
    from tqdm import tqdm

    from batch.decisions_sim import TeamConfig
    from batch.synth import DISPOSITIONS_FILE, SynthConfig, generate
    team = (TeamConfig(load_settings().review_capacity, decision_error_rate, decision_delay_hours)
            if with_decisions else None)
    cfg = SynthConfig(out, tuple(networks), start, days, alerts_per_day, window_days, seed,
                      labelled_share, team)
    with tqdm(total=days * len(networks), unit="batch", desc="synth") as bar:
        written = generate(cfg, progress=bar.update)
    click.echo(f"wrote {len(written)} batches (~{alerts_per_day} alerts/day) under {out}")
    if team is not None:
        click.echo(f"simulated decisions on the top {team.capacity} alerts a day: {out / DISPOSITIONS_FILE}")


@main.command()
@click.option("--source", required=True, help="SOT root: a directory or s3://bucket/prefix")
@network_option
@start_option
@end_option
@click.option("--window-days", type=click.IntRange(1), default=None, help="Only this window.")
@click.option("--skip-existing", is_flag=True, help="Leave batches already ingested alone.")
@one_line_errors
def ingest(source, networks, start, end, window_days, skip_existing) -> None:
    """Validate and load SOT batches into ClickHouse (a broken batch is refused whole)."""
    from tqdm import tqdm

    from batch.ingest import ingest_source
    from batch.sot_reader import open_source
    ordered(start, end)
    ctx = app_context()
    fs, root = open_source(source, ctx.settings.s3_endpoint, ctx.settings.s3_anonymous)
    bar = tqdm(unit="batch", desc="ingest")
    report = ingest_source(ctx.raw, fs, root, networks=set(networks) or None, start=start, end=end,
                           window_days=window_days, skip_existing=skip_existing,
                           on_batch=lambda key, status: bar.update(1))
    bar.close()
    if report.did_nothing:
        raise AmlScoreError(
            f"nothing to ingest: no batch folders {{network}}/{{YYYY-MM-DD}}/{{window}}/ under {source}"
            + (" match the filters given" if networks or start or end or window_days else ""))
    click.echo(f"ingested {len(report.ingested)} batches ({report.rows} rows), skipped "
               f"{len(report.skipped)}, labels {report.labels or 'none'} into {ctx.target.describe()}")
    for batch, problems in report.refused.items():
        click.echo(f"REFUSED {batch}:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
    if not report.ok:
        sys.exit(1)


@main.command()
@network_option
@start_option
@end_option
@window_option
@click.option("--holdout-days", type=click.IntRange(1), default=None,
              help="Last dates held out for evaluation (default 20%).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--no-promote", is_flag=True, help="Register as a candidate; do not promote.")
@click.option("--labels", "label_use", type=click.Choice(["addresses", "dispositions", "both"]),
              default=None, help="Where labels come from (default: both when any decision is "
                                 "stored, else addresses).")
@click.option("--as-of", callback=parse_moment, default=None,
              help="Training cut-off, ISO 8601 (default now): decisions made later are not used.")
@one_line_errors
def train(networks, start, end, window_days, holdout_days, seed, no_promote, label_use, as_of) -> None:
    """Train alert_scorer, alert_ranker and cluster_scorer; write models and a report."""
    ordered(start, end)
    from batch.dataset import Labels
    from batch.train import TrainConfig
    from batch.train import train as run_train
    ctx = app_context()
    if label_use is None:
        label_use = "both" if ctx.dispositions.any() else "addresses"
    labels = Labels(label_use, as_of, ctx.dispositions)
    networks, start, end = resolve_range(ctx, networks, start, end, window_days)
    from amlscore.cli_validation import train_gate
    cfg = TrainConfig(networks, start, end, window_days, holdout_days, seed,
                      ctx.settings.train_threads, promote=not no_promote,
                      review_capacity=ctx.settings.review_capacity,
                      suppress_max_miss=ctx.settings.suppress_max_miss)
    validations: list[dict] = []
    result = run_train(ctx.raw, ctx.models, cfg, ctx.registry_table,
                       progress=lambda step: click.echo(f"… {step}", err=True),
                       gate=train_gate(ctx, validations), labels=labels)
    m = result.metrics
    ranking = m["ranking"]["mean"]
    click.echo(f"model version {result.version} ({'promoted' if result.promoted else 'candidate'})")
    click.echo(f"  alert_scorer   held-out AUC {m['alert_scorer']['auc']}  PR-AUC "
               f"{m['alert_scorer']['pr_auc']}  Brier {m['alert_scorer']['brier']}")
    unseen = m["alert_scorer_unseen_addresses"]
    click.echo(f"                 on addresses unseen in training: AUC {unseen['auc']} "
               f"({unseen['n']} alerts, {unseen['positives']} positive)")
    click.echo(f"  alert_ranker   NDCG@10 {ranking['ranker_ndcg@10']} (classifier baseline "
               f"{ranking['classifier_baseline_ndcg@10']}), precision@50 "
               f"{ranking['ranker_precision@50']} ({ranking['classifier_baseline_precision@50']})")
    choice = m["rank_score"]
    click.echo(f"  rank_score     from the {choice['source']}: {choice['why']}")
    used = m["labels"]
    click.echo(f"  labels         {used['use']} as of {used['as_of']}: training "
               f"{used['training']['dispositions']} from decisions, {used['training']['addresses']} from "
               f"address labels; held out {used['held_out']['dispositions']} / {used['held_out']['addresses']}")
    if "skipped" in m["cluster_scorer"]:
        click.echo(f"  cluster_scorer not trained: {m['cluster_scorer']['skipped']}; clusters stay "
                   "unscored with this version")
    else:
        click.echo(f"  cluster_scorer held-out AUC {m['cluster_scorer']['auc']}  PR-AUC "
                   f"{m['cluster_scorer']['pr_auc']}")
    capacity, suppression = m["capacity"], m["suppression"]
    click.echo(f"  at capacity    recall {capacity['recall_at_capacity']} in the top "
               f"{capacity['review_capacity']} alerts a day (precision {capacity['precision_at_capacity']}); "
               + ", ".join(f"{k} recall needs {v if v is not None else '-'}/day"
                           for k, v in capacity["overall"]["alerts_per_day_for_recall"].items()))
    if suppression["threshold"] > 0:
        click.echo(f"  suppression    below {suppression['threshold']:.6g}: {suppression['share_below']:.1%} "
                   f"of alerts ({suppression['why']}; 95% bound of the miss rate "
                   f"{suppression['miss_upper_bound']:.4f} ≤ {suppression['max_miss']})")
    else:
        click.echo(f"  suppression    none: {suppression['why']}")
    from batch.report import NO_PLOTS, plt
    click.echo(f"  report: {result.report_dir / 'report.json'} "
               + ("(+ plots)" if plt is not None else f"({NO_PLOTS})"))
    from amlscore.cli_validation import say
    for report in validations:
        click.echo("  validation (held-out dates, against "
                   f"{report['champion'] or 'no champion yet'}):")
        say(report)
    if result.refused:
        raise AmlScoreError(f"{result.version} not promoted: validation failed: {result.refused} "
                            f"(`amlscore promote {result.version} --force` promotes it anyway)")


@main.command()
@network_option
@start_option
@end_option
@window_option
@click.option("--chunk-size", default=50_000, show_default=True, type=click.IntRange(1),
              help="Alerts read at a time: a larger batch in pages, smaller ones together.")
@click.option("--force", is_flag=True, help="Re-score batches already complete for this model.")
@click.option("--model-version", default=None, help="Default: the promoted version.")
@one_line_errors
def backfill(networks, start, end, window_days, chunk_size, force, model_version) -> None:
    """Score a date range from ClickHouse into alert_scores / cluster_scores."""
    ordered(start, end)
    from tqdm import tqdm

    from batch.backfill import BackfillConfig
    from batch.backfill import backfill as run_backfill
    from shared.clickhouse.connection import connect
    from shared.clickhouse.score_store import ScoreStore
    from shared.registry import challenger_of
    ctx = app_context()
    scoring = ctx.scoring(model_version)
    networks, start, end = resolve_range(ctx, networks, start, end, window_days)
    batches = ctx.raw.batches(networks, start, end, window_days)
    with tqdm(total=sum(b[3] for b in batches), unit="alert", desc="backfill") as bar:
        challenger = challenger_of(ctx.models, scoring.model_version)
        shadow = ctx.scoring(challenger) if challenger else None
        # The score writes on a client of their own: they overlap the reads (see batch.backfill).
        sink = ScoreStore(connect(ctx.target, create_database=False), ctx.target.database)
        report = run_backfill(ctx.raw, sink, scoring,
                              BackfillConfig(networks, start, end, window_days, chunk_size, force),
                              on_batch=lambda _name, _status, n: bar.update(n), shadow=shadow)
    click.echo(f"model {report.model_version}: scored {len(report.scored)} batches "
               f"({report.alerts} alerts, {report.clusters} clusters) in {report.seconds:.1f}s "
               f"= {report.alerts_per_second:,.0f} alerts/s; skipped {len(report.skipped)} complete")
    if shadow is not None:
        click.echo(f"challenger {shadow.model_version} scored the same alerts into alert_scores_shadow")
    if report.clusters_skipped:
        click.echo(f"clusters left unscored: model {report.model_version} has no cluster_scorer "
                   f"({report.clusters_skipped})")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True)
@network_option
@start_option
@end_option
@window_option
@click.option("--model-version", default=None, help="Default: the promoted version.")
@one_line_errors
def export(out, networks, start, end, window_days, model_version) -> None:
    """Write scores (with rank positions) for a date range to Parquet."""
    ordered(start, end)
    from batch.export import export_scores
    ctx = app_context()
    networks, start, end = resolve_range(ctx, networks, start, end, window_days)
    version = model_version or ctx.models.current_version()
    if version is None:
        raise AmlScoreError("no promoted model; pass --model-version or run `amlscore train`")
    rows = export_scores(ctx.scores, out, networks, start, end, window_days, version)
    click.echo(f"wrote {rows} scored alerts of model {version} to {out}")


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the statements without running them.")
@one_line_errors
def migrate(dry_run) -> None:
    """Bring the ClickHouse database's schema up to this release (additive: nothing is dropped)."""
    from shared.clickhouse.connection import connect
    from shared.clickhouse.migrations import SCHEMA_VERSION, migrate, plan, recorded_version
    from shared.context import Context
    target = Context(load_settings()).target
    client = connect(target)
    if dry_run:
        before = recorded_version(client, target.database)
        statements = plan(client, target.database)
        for statement in statements:
            click.echo(statement)
        click.echo(f"database {target.database}: schema {before} → {SCHEMA_VERSION}, "
                   f"{len(statements)} statements (not run)")
        return
    before, after, statements = migrate(client, target.database)
    if before == after and not statements:
        click.echo(f"database {target.database} is up to date (schema {after})")
    else:
        click.echo(f"database {target.database}: schema {before} → {after} ({len(statements)} statements)")


@main.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("amlscore-demo"),
              show_default=True, help="Everything the demo makes; emptied at the start of each run.")
@click.option("--alerts-per-day", default=3000, show_default=True, type=click.IntRange(100))
@click.option("--rate", default=2000.0, show_default=True, help="Messages per second streamed live.")
@one_line_errors
def demo(directory, alerts_per_day, rate) -> None:
    """The whole product on embedded defaults: synth → ingest → train → worker → live stream →
    investigators' decisions → retrain with them → before/after."""
    import time

    import orjson
    from tqdm import tqdm

    from amlscore.demo import DemoConfig, percentile, run_demo
    started = time.monotonic()
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="alert", desc="      scored + dead-lettered")
        bar.update(done - bar.n)

    try:
        s = run_demo(DemoConfig(directory.resolve(), alerts_per_day=alerts_per_day, rate=rate),
                     click.echo, progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo("\n" + s.train_output.rstrip())
    click.echo(f"\nlive stream: {s.alerts_in} alerts in → {s.scored} scored, {s.dead_lettered} dead-lettered "
               f"(the malformed ones, see aml.alerts.dlq), {s.clusters} clusters scored")
    click.echo(f"  {s.scored / s.seconds:,.0f} alerts/s over {s.seconds:.1f}s (paced at {rate:.0f} msg/s); "
               f"event→score latency p50 {percentile(s.latencies_ms, 50):.0f} ms, "
               f"p99 {percentile(s.latencies_ms, 99):.0f} ms")
    click.echo(f"  stream = backfill: {s.equal_to_backfill} of {s.streamed} streamed scores equal, bit for "
               "bit, the batch path's for the same alerts")
    top = s.api_top
    click.echo(f"\nGET /scores?network=ethereum&date={top.get('date')}&limit=5 (from the running worker, "
               f"{top.get('total')} ranked):")
    for item in top.get("items", []):
        click.echo(f"  #{item['rank_position']:<3} {item['alert_id'][:22]:<22} score {item['score']:.3f} "
                   f"rank_score {item['rank_score']:.3f} {item['risk_level']}")
    features = {k: v for k, v in s.api_drift.get("features", {}).items() if v["psi"] is not None}
    statuses = [v["status"] for v in features.values()]
    worst = sorted(features.items(), key=lambda kv: -kv[1]["psi"])[:3]
    click.echo(f"GET /drift: {s.api_drift.get('rows', 0)} live alerts vs training — "
               f"{statuses.count('act')} act, {statuses.count('watch')} watch, "
               f"{statuses.count('stable')} stable; highest PSI "
               + ", ".join(f"{k} {v['psi']:.3f}" for k, v in worst))
    click.echo("\nten riskiest alerts of the day:")
    for row in s.top:
        top = ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in orjson.loads(row["explanation"])[:3])
        click.echo(f"  {row['score']:.3f} {row['risk_level']:<8} {row['typology_type']:<24} "
                   f"{row['address'][:14]}…  because {top}")
    loop, r = s.loop, s.loop.compared
    used = r["labels"]
    click.echo(f"\ninvestigators' decisions: {loop.posted} posted on the live queue (POST "
               f"/alerts/{{id}}/disposition; {loop.queue_left} left undecided in GET /queue), "
               f"{loop.imported} of earlier days imported")
    click.echo("  " + next(line for line in loop.retrain_output.splitlines() if "labels " in line).strip())
    click.echo(f"  held-out recall at {r['capacity']['champion']['review_capacity']} alerts/day, "
               f"{r['range']['start']}..{r['range']['end']} (ground truth: {used['dispositions']} "
               f"decisions, {used['addresses']} address labels):")
    for name, what in (("champion", "before, address labels only"), ("challenger", "after, with decisions")):
        at = r["capacity"][name]
        click.echo(f"    {what:<27} {r[name]}  recall {at['recall_at_capacity']} "
                   f"(precision {at['precision_at_capacity']}); against the generator's truth "
                   f"{loop.truth_recall.get(r[name])}")
    click.echo("  (the live day is left out: its decisions were made on the first version's own "
               "queue, which favours it)")
    click.echo(f"  {loop.retrained} is a candidate: `amlscore promote {loop.retrained}` validates "
               "and promotes it")
    click.echo(f"\ntraining report and plots: {s.report_dir}/ (report.json, roc.png, pr.png, "
               f"calibration.png, importance.png, recall_at_capacity.png; validation.json, "
               f"validation.txt)")
    click.echo(f"demo finished in {time.monotonic() - started:.0f}s; everything is under {directory}/")


for _command in (*cli_stream.COMMANDS, *cli_governance.COMMANDS, *cli_validation.COMMANDS,
                 *cli_dispositions.COMMANDS):
    main.add_command(_command)
