"""`python -m tests.benchmarks.run [batch|stream|dispositions|merges|priority|rates] [--alerts N] [--bootstrap HOST:PORT | --tls] [--json FILE]`: print the figures
next to their limits (measured in the same run), write JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=["all", "batch", "stream", "dispositions", "merges", "priority", "rates"])
    parser.add_argument("--alerts", type=int, default=None,
                        help="default: 1,000,000 for batch and merges, 100,000 for stream")
    parser.add_argument("--rss-events", type=int, default=0,
                        help="stream: keep feeding the worker until this many events, then read its RSS")
    parser.add_argument("--bootstrap", default=None,
                        help="stream: measure on this Kafka cluster (security from AMLSCORE_KAFKA_*) "
                             "instead of a local Tansu")
    parser.add_argument("--tls", action="store_true",
                        help="stream: the local Tansu behind stunnel4 with mutual TLS")
    parser.add_argument("--features", choices=["embed", "lookup", "mixed"], default="mixed",
                        help="stream: how alerts carry their features (replay's --features)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="priority: workers per setting (the settings alternate)")
    parser.add_argument("--nice", default="",
                        help="priority: more AMLSCORE_SCORING_NICE values to measure, comma-separated")
    parser.add_argument("--rates", default="",
                        help="rates: the steady alerts/s to measure, comma-separated (default 500,1000,1500,2000)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args()
    results: dict = {}
    lines: list[str] = []
    if args.suite in ("all", "stream"):
        from tests.benchmarks import stream_bench
        stream = {f"stream.{k}": v for k, v in stream_bench.run(
            args.alerts or 100_000, rss_events=args.rss_events,
            bootstrap=args.bootstrap, tls=args.tls, features=args.features).items()}
        results.update(stream)
        lines += stream_bench.report(stream)
    if args.suite in ("all", "batch"):
        from tests.benchmarks import batch_bench
        batch = {f"batch.{k}": v for k, v in batch_bench.run(args.alerts or 1_000_000).items()}
        results.update(batch)
        lines += batch_bench.report(batch)
    if args.suite == "dispositions":
        from tests.benchmarks import decisions_bench
        decided = {f"dispositions.{k}": v for k, v in decisions_bench.run().items()}
        results.update(decided)
        lines += decisions_bench.report(decided)
    if args.suite == "merges":
        from tests.benchmarks import merge_bench
        merged = {f"merges.{k}": v for k, v in merge_bench.run(args.alerts or 1_000_000).items()}
        results.update(merged)
        lines += merge_bench.report(merged)
    if args.suite == "priority":
        from tests.benchmarks import priority_bench
        niced = {f"priority.{k}": v for k, v in priority_bench.run(
            args.rounds, tuple(int(n) for n in args.nice.split(",") if n)).items()}
        results.update(niced)
        lines += priority_bench.report(niced)
    if args.suite == "rates":
        from tests.benchmarks import rates_bench
        rated = {f"rates.{k}": v for k, v in rates_bench.run(
            tuple(int(r) for r in args.rates.split(",") if r) or rates_bench.RATES).items()}
        results.update(rated)
        lines += rates_bench.report(rated)
    print("\n".join(lines))
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
