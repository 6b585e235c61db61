"""`amlscore` commands of the stream: the worker, replay of historical alerts into Kafka, and the
dead-letter topic (summary and re-drive). Registered on the group in :mod:`amlscore.cli`."""

from __future__ import annotations

import click

from amlscore.cli_common import (
    app_context,
    end_option,
    network_option,
    ordered,
    resolve_range,
    start_option,
    window_option,
)
from amlscore.failures import one_line_errors, quiet_libraries
from shared.settings import load_settings


@click.command()
@click.option("--web-port", type=click.IntRange(1, 65535), default=None, help="Default AMLSCORE_WEB_PORT.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Default AMLSCORE_BATCH_SIZE.")
@one_line_errors
def worker(web_port, batch_size) -> None:
    """Run the Faust scoring worker (Kafka → RiskScoring → ClickHouse + aml.alert-scores)."""
    from stream.worker import run_worker
    overrides = {k: v for k, v in {"web_port": web_port, "batch_size": batch_size}.items() if v is not None}
    run_worker(load_settings(**overrides), overrides)


@click.command()
@click.option("--source", default=None, help="SOT root (dir or s3://); default: ClickHouse.")
@network_option
@start_option
@end_option
@window_option
@click.option("--features", "features_mode", type=click.Choice(["embed", "lookup", "mixed"]),
              default="embed", show_default=True,
              help="Embed address features in events, leave them for the worker to look up, or half each.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Messages per second (default: as fast as possible).")
@click.option("--no-clusters", is_flag=True, help="Publish alerts only.")
@click.option("--envelope", default=1, show_default=True, type=click.IntRange(1, 10_000),
              help="Alerts per message: above 1, alerts travel in envelopes the worker unpacks.")
@one_line_errors
def replay(source, networks, start, end, window_days, features_mode, rate, no_clusters,
           envelope) -> None:
    """Publish historical alerts (and clusters) into Kafka with batched produce."""
    quiet_libraries()
    ordered(start, end)
    import asyncio
    import time

    from tqdm import tqdm

    from batch import replay as rp
    from batch.ingest import select
    from batch.sot_reader import discover_batches, open_source
    from shared.kafka_io import ensure_topics, publish
    from shared.kafka_security import kafka_security
    settings = load_settings()
    if source:
        fs, root = open_source(source, settings.s3_endpoint, settings.s3_anonymous)
        keys = select(discover_batches(fs, root), set(networks) or None, start, end, window_days)
        batches = rp.batches_from_sot(fs, root, keys)
    else:
        ctx = app_context()
        networks, start, end = resolve_range(ctx, networks, start, end, window_days)
        batches = rp.batches_from_clickhouse(ctx.raw, ctx.raw.batches(networks, start, end, window_days))
    report = rp.ReplayReport()
    records = rp.records(batches, settings.alerts_topic, settings.clusters_topic, features_mode,
                         report, with_clusters=not no_clusters, envelope=envelope)
    options = kafka_security(settings).client_options()
    asyncio.run(ensure_topics(settings.kafka_bootstrap, [settings.alerts_topic, settings.clusters_topic,
                                                         settings.scores_topic, settings.dlq_topic],
                              settings.topic_partitions, options))
    started = time.monotonic()
    with tqdm(unit="msg", desc="replay") as bar:
        sent = asyncio.run(publish(records, settings.kafka_bootstrap, rate, bar.update, options=options))
    seconds = time.monotonic() - started
    click.echo(f"published {report.alerts} alerts and {report.clusters} clusters ({sent} messages) "
               f"to {settings.kafka_bootstrap} in {seconds:.1f}s = {sent / max(seconds, 1e-9):,.0f} msg/s")


@click.command()
@click.option("--reason", "chosen", multiple=True, help="Only dead letters with this reason (repeatable).")
@click.option("--redrive", is_flag=True, help="Publish the chosen ones, unchanged, back to the alerts topic.")
@click.option("--show", default=5, show_default=True, help="Examples to print per reason.")
@one_line_errors
def dlq(chosen, redrive, show) -> None:
    """Summarise the dead-letter topic by reason; optionally re-drive some of it."""
    quiet_libraries()
    import asyncio

    from stream import dlq as dead
    from stream.boundary import Reason
    known = Reason.all()
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown reason {', '.join(unknown)}; known: {', '.join(known)}",
                                 param_hint="--reason")
    from shared.kafka_security import kafka_security
    settings = load_settings()
    options = kafka_security(settings).client_options()
    records = asyncio.run(dead.read_dead_letters(settings.kafka_bootstrap, settings.dlq_topic,
                                                 options=options))
    selected = [r for r in records if not chosen or r.reason in chosen]
    click.echo(f"{len(records)} dead letters in {settings.dlq_topic}"
               + (f", {len(selected)} with reason {', '.join(chosen)}" if chosen else ""))
    for reason, count in dead.reasons(selected).most_common():
        click.echo(f"  {count:>7}  {reason}")
        for record in [r for r in selected if r.reason == reason][:show]:
            key = (record.key or b"").decode("utf-8", "replace")[:40]
            click.echo(f"           {record.headers.get('dlq.source_topic', '?')}[{record.partition}]@"
                       f"{record.headers.get('dlq.offset', '?')} key={key} {record.headers.get('dlq.error', '')[:100]}")
    if redrive:
        whole = [r for r in selected if not r.truncated]
        sent = dead.redrive(settings.kafka_bootstrap, whole, settings.alerts_topic, options)
        click.echo(f"re-drove {sent} dead letters to {settings.alerts_topic}")
        if len(whole) < len(selected):
            click.echo(f"left {len(selected) - len(whole)} truncated dead letters (too large to "
                       "keep whole: their headers name the original size and sha256)")


COMMANDS = (worker, replay, dlq)
