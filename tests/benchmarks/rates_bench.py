"""Where on this box the stream's latency leaves the issue's limit: event→ScoreEvent p50/p99 at
a series of steady rates, in one run, for a fresh worker (default settings, features embedded,
warmed up with 5,000 alerts) and for the floor under it (the bare Faust agent of
``tests.benchmarks.faust_ceiling`` in ``forward`` mode: the worker's path with no scoring and no
store), each with the CPU of the box and of the agent, beside the bare Faust consume-only
ceiling of the same run. The limits (p99 ≤ 150 ms at 2,000/s, ≤ 400 ms at 4,000/s) were set on
a box whose ceiling was 11,926/s; ``…_share_of_ceiling`` says what fraction of this box's
ceiling each rate is, so a rate here can be set beside the same share there.

``python -m tests.benchmarks.run rates [--rates 500,1000,1500,2000]`` (about 12 minutes for
four rates); ``rates.highest_rate_p99_within_150ms`` is the highest rate measured whose worker
p99 is within 150 ms (0: none).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from batch import replay as rp
from batch.sot_reader import discover_batches, open_source
from shared.kafka_io import ensure_topics
from tests.benchmarks.bench_kafka import OPTIONS, broker, produce
from tests.benchmarks.stream_bench import GROUP_TIMEOUTS, _faust_ceiling, _floor_latencies, _session
from tests.stream_harness import cli

RATES = (500, 1000, 1500, 2000)
LIMIT_MS = 150.0
CEILING_ALERTS = 60_000
ISSUE_CEILING = 11_926  # bare Faust consume-only, alerts/s, on the box the limits were set on


def run(rates: tuple[int, ...] = RATES) -> dict:
    rates = tuple(sorted(rates))
    work = Path(tempfile.mkdtemp(prefix="amlscore-rates-bench-"))
    home, sot = work / "home", work / "sot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update({"AMLSCORE_HOME": str(home), **GROUP_TIMEOUTS})
    days = max(3, -(-max(rates) * 20 // 20_000))  # each rate sends 20 s of alerts
    cli(env, "synth", "--out", str(sot), "--days", str(days), "--alerts-per-day", "20000", "--seed", "3")
    cli(env, "ingest", "--source", str(sot))
    cli(env, "train")
    fs, root = open_source(str(sot))
    records = [(k, v) for _, k, v in rp.records(rp.batches_from_sot(fs, root, discover_batches(fs, root)),
                                                 "x", "y", "embed", rp.ReplayReport(), with_clusters=False)]
    out: dict = {"rates": list(rates)}
    with broker(None, False, work) as (b, _security):
        asyncio.run(ensure_topics(b, ["ceiling"], 4, options=OPTIONS))
        asyncio.run(produce(b, "ceiling", records[:CEILING_ALERTS]))
        ceiling = _faust_ceiling(b, "ceiling", min(CEILING_ALERTS, len(records)), work, "rates", env)
        out["faust_consume_only_msg_s"] = round(ceiling)
        floor = _floor_latencies(b, records, work, env, tuple((r, f"floor_{r}") for r in rates))
        worker = _session(b, env, records[:5000], work, "rates", {"embed": records}, 1, 0,
                          tuple((r, f"worker_{r}") for r in rates))
    for rate in rates:
        out[f"share_of_ceiling_{rate}"] = round(rate / ceiling, 3)
        out[f"issue_box_equivalent_rate_{rate}"] = round(rate / ceiling * ISSUE_CEILING)
        for stem, figures in ((f"worker_{rate}", worker), (f"floor_{rate}", floor)):
            for key, value in figures.items():
                if key.startswith(f"{stem}_"):
                    out[key.removesuffix("_embedded")] = value
    within = [r for r in rates if out[f"worker_{r}_p99_ms"] <= LIMIT_MS]
    out["highest_rate_p99_within_150ms"] = max(within, default=0)
    return out


def report(results: dict) -> list[str]:
    lines = []
    for key, value in results.items():
        note = ""
        if key.endswith("_p99_ms") and "worker_" in key:
            rate = key.split("worker_")[1].split("_")[0]
            floor = results.get(key.replace("worker_", "floor_"))
            note = (f"   limit <= {LIMIT_MS} {'ok' if value <= LIMIT_MS else 'MISSED'}   (floor {floor};"
                    f" {results.get(key.split('worker_')[0] + 'share_of_ceiling_' + rate)} of the ceiling)")
        lines.append(f"{key:<45} {value!s:>10}{note}")
    return lines
