"""`python -m tests.benchmarks.arrow_hang [--threads N] [--queries N] [--workdir DIR]`: the range
reads `train` makes (raw_alerts, raw_features, raw_clusters FINAL over 1M synthetic alerts, in
Arrow), repeated on the embedded engine until one does not return within 60 s.

Without --threads the reads go through the product's client (Arrow on one thread); --threads 2
sends them at the engine's default, which is what hung. Prints each round's seconds and how it
ended; exit 3 when a read got stuck. The data (synth + ingest, a few minutes) is made once in
--workdir and reused."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import threading
import time
from pathlib import Path

from batch.ingest import ingest_source
from batch.sot_reader import open_source
from batch.synth import SynthConfig, generate
from shared.clickhouse.connection import connect, parse_clickhouse_url
from shared.clickhouse.migrations import ensure_schema
from shared.clickhouse.raw_store import RANGE_FILTER, RawStore, range_params
from shared.features import ALERT_SCORING_COLUMNS

START, DAYS = dt.date(2024, 1, 1), 200
STUCK = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="max_threads of each read")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--workdir", type=Path, default=Path("arrow-hang-data"))
    args = parser.parse_args()
    client = connect(parse_clickhouse_url(f"chdb://{(args.workdir / 'chdb').resolve()}", "bench"))
    ensure_schema(client, "bench")
    if not (args.workdir / "ingested").exists():
        generate(SynthConfig(out=args.workdir / "sot", start=START, days=DAYS, alerts_per_day=5000, seed=1))
        ingest_source(RawStore(client, "bench"), *open_source(str(args.workdir / "sot")))
        (args.workdir / "ingested").touch()
    raw = client._client._client if args.threads else client  # the engine's own, unwrapped
    settings = {"max_threads": args.threads} if args.threads else {}
    params = range_params(["ethereum"], START, START + dt.timedelta(days=DAYS - 1), 7)
    reads = [("raw_alerts", ", ".join(ALERT_SCORING_COLUMNS), "network, processing_date, alert_id"),
             ("raw_features", "* EXCEPT (_version, _ingested_at)", "network, processing_date, address"),
             ("raw_clusters", "* EXCEPT (_version, _ingested_at)", "network, processing_date, cluster_id")]
    state = {"what": "", "since": time.monotonic()}

    def watchdog() -> None:
        while True:
            time.sleep(1)
            if time.monotonic() - state["since"] > STUCK:
                print(f"STUCK: {state['what']} did not return within {STUCK:.0f}s "
                      f"(threads {args.threads or 'product default'})", flush=True)
                os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    for n in range(args.queries):
        table, columns, order = reads[n % len(reads)]
        state.update(what=f"query {n + 1} ({table})", since=time.monotonic())
        started = time.monotonic()
        rows = raw.query_arrow(f"SELECT {columns} FROM bench.{table} FINAL WHERE {RANGE_FILTER} "
                               f"ORDER BY {order}", parameters=params, settings=settings).num_rows
        print(f"query {n + 1} {table}: {rows:,} rows in {time.monotonic() - started:.1f}s", flush=True)
    print(f"all {args.queries} queries returned (threads {args.threads or 'product default'})")


if __name__ == "__main__":
    main()
