"""Stream figures on the local Tansu broker, each next to a limit measured in the same run.

Quiet box, then the same with a CPU hog on the other core:
- backlog: the worker (default settings, default explanation policy) end to end vs a bare Faust
  consume-only agent (same App class, broker, data);
- event→ScoreEvent latency at a steady 2,000/s and 4,000/s (producer timestamp → ScoreEvent
  timestamp), in each way alerts carry their features: embedded, looked up, and half and half;
  next to the floor at the same rates (``floor_latency_*``: a bare Faust agent that only
  publishes what it takes through the worker's publisher and acks it, no scoring, no store);
  each from a settled worker (all earlier events scored, then ``SETTLE_S`` quiet), every mode at
  2,000/s before any at 4,000/s; once in the worker that took the backlog, and once on a fresh
  worker per mode warmed up with 5,000 alerts (``latency_fresh_*``); and on a fresh worker whose
  sink writes nothing (``latency_no_store_*``, features embedded): the latency without the
  store's inserts and merges; beside each, the CPU of the box and of the worker, and the
  worker's share in the kernel (``…_worker_system_cpu_pct…``: system calls, files, pages);
- alerts/s through envelopes (``replay --envelope``) next to one alert per message;
- RSS of the worker's process tree after the backlog (and, with --rss-events, after N events,
  with the growth between the two);
- where the time goes per phase (the worker's own per-batch trace, from /metrics).

``--bootstrap HOST:PORT`` measures on an existing cluster instead of a local Tansu, with the
worker's own Kafka security settings (``AMLSCORE_KAFKA_SECURITY_PROTOCOL`` and the rest, from the
environment); ``--tls`` puts the local Tansu behind a TLS terminator (stunnel4) that requires a
client certificate. Either way every client of the run — producers, consumers, the bare Faust
agent and the worker — connects through :func:`shared.kafka_security.kafka_security`, as the
product's clients do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from amlscore.demo import event_to_score_latencies
from amlscore.local_broker import free_port
from batch import replay as rp
from batch.sot_reader import discover_batches, open_source
from shared.clickhouse.storage import describe
from shared.kafka_io import ensure_topics
from tests.benchmarks import memory_floor
from tests.benchmarks.bench_kafka import OPTIONS, broker, consume, fresh, paced, produce
from tests.proc_cpu import cpu_window, process_tree
from tests.proc_memory import status_mb
from tests.stream_harness import WorkerProcess, cli

PY = sys.executable
GROUP_TIMEOUTS = {  # Tansu joins take about rebalance_timeout / 2
    "AMLSCORE_SESSION_TIMEOUT": "6", "AMLSCORE_REBALANCE_TIMEOUT": "6",
    "AMLSCORE_HEARTBEAT_INTERVAL": "1",
}
LIMITS = {  # key: (limit, "min" | "max"); a ratio's own reference is measured in the same run
    "worker_vs_faust_consume_only": (0.8, "min"),
    "latency_p99_ms": (150.0, "max"),
    "latency_4k_p99_ms": (400.0, "max"),
    "latency_p99_ms_embedded": (150.0, "max"),
    "latency_p99_ms_lookup": (150.0, "max"),
    "latency_4k_p99_ms_embedded": (400.0, "max"),
    "latency_4k_p99_ms_lookup": (400.0, "max"),
    "worker_rss_mb_after_e2e": (450.0, "max"),
    "worker_rss_mb_after_all": (450.0, "max"),
    **{f"latency_fresh{rate}_p99_ms{suffix}": (bound, "max") for rate, bound in (("", 150.0), ("_4k", 400.0))
       for suffix in ("", "_embedded", "_lookup")},
}


def _bare_agent(bootstrap: str, topic: str, mode: str, progress: Path, group: str,
                environment: dict) -> subprocess.Popen:
    """A bare Faust agent of ``tests.benchmarks.faust_ceiling`` on ``topic`` in ``mode``."""
    env = {**environment, "BENCH_BOOTSTRAP": bootstrap, "BENCH_TOPIC": topic, "BENCH_MODE": mode,
           "BENCH_PROGRESS": str(progress), "BENCH_WEB_PORT": str(free_port()), "BENCH_GROUP": group}
    return subprocess.Popen([PY, "-m", "faust", "-A", "tests.benchmarks.faust_ceiling", "worker", "-l", "warn"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=Path(__file__).parents[2])


def _faust_ceiling(bootstrap: str, topic: str, n: int, work: Path, tag: str, environment: dict) -> float:
    progress = work / f"ceiling-{tag}.txt"
    process = _bare_agent(bootstrap, topic, "consume", progress, f"ceiling-{tag}", environment)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            lines = progress.read_text().split("\n") if progress.exists() else []
            rows = [tuple(map(float, line.split())) for line in lines if line]
            if rows and rows[-1][0] >= n:
                return (rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1])
            time.sleep(0.5)
        raise RuntimeError("faust ceiling did not finish")
    finally:
        process.terminate()
        process.wait(30)


def named(stem: str) -> tuple[tuple[int, str], ...]:
    """The issue's two steady rates with their keys' stems: ``stem`` at 2,000/s, ``stem_4k`` at 4,000/s."""
    return ((2000, stem), (4000, f"{stem}_4k"))


def _floor_latencies(bootstrap: str, records, work: Path, environment: dict,
                     rates: tuple[tuple[int, str], ...] = named("floor_latency")) -> dict[str, float]:
    """The worker's path with no scoring and no store: a bare Faust agent (the worker's App class
    and fetch wait) that publishes each take through the worker's own publisher, waits for the
    broker's acknowledgement and then acks, at the same steady rates as the worker, from the same
    producer. Its p99 is the latency the framework, the broker and the producer leave on this box
    before anything is scored: a limit below it cannot be met by the worker."""
    progress, topic = work / "floor.txt", "floor"
    asyncio.run(ensure_topics(bootstrap, [topic, f"{topic}.out"], 4, options=OPTIONS))
    process = _bare_agent(bootstrap, topic, "forward", progress, "floor", environment)
    out: dict[str, float] = {}
    try:
        warm = fresh(records[:2000], b"-floor-warm")
        asyncio.run(produce(bootstrap, topic, warm))
        deadline = time.monotonic() + 120
        while not progress.exists() or _progress_count(progress) < len(warm):
            assert time.monotonic() < deadline and process.poll() is None, "the floor agent never consumed"
            time.sleep(0.2)
        for rate, name in rates:
            time.sleep(SETTLE_S / 3)
            steady = fresh(records[: rate * 20], f"-floor-{rate}".encode())
            with cpu_window(process.pid) as cpu:
                asyncio.run(paced(bootstrap, topic, steady, rate))
            out[f"{name}_box_cpu_pct"], out[f"{name}_agent_cpu_pct"] = cpu.box_pct, cpu.tree_pct
            latencies = asyncio.run(event_to_score_latencies(bootstrap, {k for k, _ in steady}, topic,
                                                             f"{topic}.out", options=OPTIONS))
            out[f"{name}_p50_ms"] = round(float(np.percentile(latencies, 50)), 1)
            out[f"{name}_p99_ms"] = round(float(np.percentile(latencies, 99)), 1)
    finally:
        process.terminate()
        process.wait(30)
    return out


def _progress_count(progress: Path) -> float:
    lines = [line for line in progress.read_text().split("\n") if line]
    return float(lines[-1].split()[0]) if lines else 0.0


def _metrics(worker: WorkerProcess) -> dict[str, float]:
    return worker.metrics()


def _scored(worker: WorkerProcess) -> float:
    return _metrics(worker).get('amlscore_scored_total{kind="alert"}', 0.0)


def _rate(worker: WorkerProcess, target: float) -> float:
    """Alerts/s from the first alert taken to the last one scored."""
    start_count = started = None
    while True:
        metrics = _metrics(worker)
        scored, now = metrics.get('amlscore_scored_total{kind="alert"}', 0.0), time.monotonic()
        if started is None and any(k.startswith("amlscore_events_in_total") for k in metrics):
            start_count, started = scored, now
        if scored >= target:
            return (scored - start_count) / (now - started)
        time.sleep(0.25)


def _wait_scored(worker: WorkerProcess, target: float, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while _scored(worker) < target:
        assert time.monotonic() < deadline, "the worker did not score everything"
        time.sleep(0.2)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of the worker: the Faust process plus its scoring process (the tree).
    ``RssAnon`` is its anonymous part (heaps, the engine's and Arrow's buffers); the rest is the
    pages of the libraries' files the processes have touched."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += status_mb(field, p)
        except OSError:
            continue  # it ended meanwhile
    return total


def phase_trace(before: dict[str, float], after: dict[str, float]) -> dict[str, dict[str, float]]:
    """µs per alert and ms per batch for each phase of the alert lane, between two readings."""
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    alerts = delta('amlscore_scored_total{kind="alert"}') or 1.0
    batches = delta('amlscore_batches_total{kind="alert"}') or 1.0
    trace = {}
    for key in after:
        if key.startswith('amlscore_phase_seconds_total{kind="alert"'):
            phase = key.split('phase="')[1].split('"')[0]
            seconds = delta(key)
            trace[phase] = {"us_per_alert": round(seconds / alerts * 1e6, 1),
                            "ms_per_batch": round(seconds / batches * 1e3, 2)}
    trace["_batches"] = {"alerts_per_batch": round(alerts / batches, 1)}
    return trace


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """One process spinning on a core: the box the worker shares with other tenants."""
    hog = subprocess.Popen([PY, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def _wait_consuming(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker holds partitions of its alert topic (its group joined)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = worker.get("/ready")
        if status == 200 and orjson.loads(body).get("consuming"):
            return
        time.sleep(0.2)
    raise AssertionError("the worker never started consuming")


NULL_SINK = "tests.benchmarks.null_sink:discard"
MODES = {"mixed": "", "embed": "_embedded", "lookup": "_lookup"}  # replay's --features → key suffix
# Before each steady rate, everything earlier is scored and then the worker is left alone this
# long, so the engine has merged the parts of what came before. Measured (2,000/s, features
# embedded, 2 cores): p99 122 ms on a fresh worker; 582 ms right after a 90k-alert backlog,
# 174 ms once 40 s had passed after it.
SETTLE_S = 30


def _session(b: str, env: dict, records, work: Path, tag: str, latency: dict | None,
             envelope_size: int, rss_events: int,
             rates: tuple[tuple[int, str], ...] = named("latency")) -> dict:
    """One worker on topics of its own: backlog, then steady rates, then envelopes. ``latency``:
    the records of each feature mode to measure latency with (None: the backlog's, mixed, at
    the first rate only); ``rates``: each steady rate with its keys' stem, in the order run."""
    topics = {k: f"{tag}.{k}" for k in ("alerts", "clusters", "scores", "dlq")}
    asyncio.run(ensure_topics(b, topics.values(), 4, options=OPTIONS))
    n = len(records)
    asyncio.run(produce(b, topics["alerts"], records))
    worker_env = {**env, "AMLSCORE_KAFKA_BOOTSTRAP": b, "AMLSCORE_WORKER_ID": f"bench-{tag}",
                  **{f"AMLSCORE_{k.upper()}_TOPIC": v for k, v in topics.items()}}
    out: dict = {}
    worker = WorkerProcess(worker_env, work / f"worker-{tag}.log").start()
    try:
        _wait_consuming(worker)
        before = _metrics(worker)
        out["worker_e2e_alerts_s"] = round(_rate(worker, n))
        out["phases"] = phase_trace(before, _metrics(worker))
        out["worker_rss_mb_after_e2e"] = round(_rss_mb(worker.process.pid))
        out["worker_rss_anon_mb_after_e2e"] = round(_rss_mb(worker.process.pid, "RssAnon"))
        out["worker_rss_mb_faust_process"] = round(status_mb("VmRSS", worker.process.pid))
        done = n
        # Every mode at one rate before any at the next (2,000/s before 4,000/s): an overloaded
        # run's aftermath (a backlog, the engine's merges of its parts) is not the next rate's
        # steady state.
        runs = ([(rate, name, mode) for rate, name in rates for mode in latency]
                if latency else [(*rates[0], "mixed")])
        for rate, name, mode in runs:
            time.sleep(SETTLE_S)
            source = latency[mode] if latency else records
            steady = fresh(source[: rate * 20], f"-{rate}-{mode}".encode())
            with cpu_window(worker.process.pid) as cpu:
                asyncio.run(paced(b, topics["alerts"], steady, rate))
            out[f"{name}_box_cpu_pct{MODES[mode]}"] = cpu.box_pct
            out[f"{name}_worker_cpu_pct{MODES[mode]}"] = cpu.tree_pct
            out[f"{name}_worker_system_cpu_pct{MODES[mode]}"] = cpu.tree_system_pct
            done += len(steady)
            _wait_scored(worker, done)
            latencies = asyncio.run(event_to_score_latencies(b, {k for k, _ in steady}, topics["alerts"],
                                                             topics["scores"], options=OPTIONS))
            out[f"{name}_p50_ms{MODES[mode]}"] = round(float(np.percentile(latencies, 50)), 1)
            out[f"{name}_p99_ms{MODES[mode]}"] = round(float(np.percentile(latencies, 99)), 1)
        if envelope_size > 1:
            wrapped = list(rp.envelopes(((topics["alerts"], k, v) for k, v in fresh(records, b"-e")),
                                        envelope_size))
            asyncio.run(produce(b, topics["alerts"], [(k, v) for _, k, v in wrapped]))
            out["envelope_alerts_s"] = round(_rate_from(worker, done, done + n))
            done += n
        loops = 0
        while done < rss_events:
            asyncio.run(produce(b, topics["alerts"], fresh(records, f"-r{loops}".encode())))
            done += n
            loops += 1
            _wait_scored(worker, done)
        if rss_events:
            out["worker_events_total"] = int(done)
            out["worker_rss_mb_after_all"] = round(_rss_mb(worker.process.pid))
            out["worker_rss_anon_mb_after_all"] = round(_rss_mb(worker.process.pid, "RssAnon"))
            out["worker_rss_growth_mb"] = out["worker_rss_mb_after_all"] - out["worker_rss_mb_after_e2e"]
    finally:
        worker.stop()
    return out


def _rate_from(worker: WorkerProcess, start: float, target: float) -> float:
    while _scored(worker) <= start:
        time.sleep(0.05)
    started, first = time.monotonic(), _scored(worker)
    _wait_scored(worker, target)
    return (target - first) / (time.monotonic() - started)


def run(alerts: int = 100_000, rss_events: int = 0, envelope_size: int = 500,
        bootstrap: str | None = None, tls: bool = False, features: str = "mixed") -> dict:
    """``features``: how alerts carry their address features (replay's --features: embed,
    lookup or mixed)."""
    work = Path(tempfile.mkdtemp(prefix="amlscore-stream-bench-"))
    home, sot = work / "home", work / "sot"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update({"AMLSCORE_HOME": str(home), **GROUP_TIMEOUTS})
    per_day = 20_000
    days = max(3, alerts // per_day)
    cli(env, "synth", "--out", str(sot), "--days", str(days), "--alerts-per-day", str(per_day), "--seed", "3")
    cli(env, "ingest", "--source", str(sot))
    cli(env, "train")
    challenger = cli(env, "train", "--no-promote", "--seed", "5").stdout.split()[2]
    fs, root = open_source(str(sot))

    def replayed(mode: str) -> list[tuple[bytes, bytes]]:
        return [(k, v) for _, k, v in rp.records(rp.batches_from_sot(fs, root, discover_batches(fs, root)),
                                                  "x", "y", mode, rp.ReplayReport(), with_clusters=False)][:alerts]
    records = replayed(features)
    by_mode = {mode: records if mode == features else replayed(mode)[:4000 * 20] for mode in MODES}
    n = len(records)
    # Where the engine's files live decides what each insert costs (shared/clickhouse/storage.py);
    # TMPDIR moves the run's directory, e.g. onto a filesystem with a journal.
    results: dict = {"alerts": n, "features": features, "engine_filesystem": describe(work)}
    with broker(bootstrap, tls, work) as (b, security):
        env.update(security)  # the worker connects as every other client of the run does
        results["kafka_security"] = security.get("AMLSCORE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
        asyncio.run(ensure_topics(b, ["raw", "raw.out", "ceiling", "ceiling-busy"], 4, options=OPTIONS))
        results["raw_produce_msg_s"] = round(n / asyncio.run(produce(b, "raw", records)))
        results["raw_consume_msg_s"] = round(n / asyncio.run(consume(b, "raw", n)))
        results["raw_passthrough_msg_s"] = round(n / asyncio.run(consume(b, "raw", n, forward="raw.out")))
        asyncio.run(produce(b, "ceiling", records))
        results["faust_consume_only_msg_s"] = round(_faust_ceiling(b, "ceiling", n, work, "quiet", env))
        results.update(_floor_latencies(b, by_mode["mixed"], work, env))
        quiet = _session(b, env, records, work, "quiet", by_mode, envelope_size, rss_events)
        results.update({k: v for k, v in quiet.items() if k != "phases"})
        results["worker_vs_faust_consume_only"] = round(
            quiet["worker_e2e_alerts_s"] / results["faust_consume_only_msg_s"], 3)
        results["envelope_vs_one_per_message"] = round(
            quiet.get("envelope_alerts_s", 0) / quiet["worker_e2e_alerts_s"], 2)
        results["phases"] = quiet["phases"]
        # The same steady rates on a fresh worker per feature mode (5,000 alerts to warm it up):
        # the steady state without the backlog's aftermath measured above.
        for mode in MODES:
            fresh = _session(b, env, by_mode[mode][:5000], work, f"fresh-{mode}", {mode: by_mode[mode]},
                             1, 0, rates=named("latency_fresh"))
            results.update({k: v for k, v in fresh.items() if k.startswith("latency_fresh")})
        # The same on a fresh worker whose sink writes nothing (features embedded): what is
        # left of its latency without the store's inserts and the engine's merges of their parts.
        no_store = _session(b, {**env, "AMLSCORE_STREAM_SINK": NULL_SINK}, by_mode["embed"][:5000], work,
                            "no-store", {"embed": by_mode["embed"]}, 1, 0,
                            rates=named("latency_no_store"))
        results.update({k: v for k, v in no_store.items() if k.startswith("latency_no_store")})
        # What the scoring process holds before it scores anything (libraries, engine, models):
        # with the Faust process, the floor under the worker's RSS.
        results["scoring_process_floor_mb"] = round(memory_floor.measure(home)["models_loaded"])
        cli(env, "shadow", challenger)  # one challenger scoring beside the champion
        shadow = _session(b, env, records, work, "shadow", None, 1, 0)
        cli(env, "shadow", "--off")
        results["shadow_worker_e2e_alerts_s"] = shadow["worker_e2e_alerts_s"]
        results["shadow_vs_no_challenger"] = round(
            shadow["worker_e2e_alerts_s"] / quiet["worker_e2e_alerts_s"], 3)
        with cpu_hog():
            asyncio.run(produce(b, "ceiling-busy", records))
            results["busy_faust_consume_only_msg_s"] = round(_faust_ceiling(b, "ceiling-busy", n, work, "busy", env))
            busy = _session(b, env, records, work, "busy", None, 1, 0)
        results["busy_worker_e2e_alerts_s"] = busy["worker_e2e_alerts_s"]
        results["busy_worker_vs_faust_consume_only"] = round(
            busy["worker_e2e_alerts_s"] / results["busy_faust_consume_only_msg_s"], 3)
        results["busy_latency_p50_ms"] = busy["latency_p50_ms"]
        results["busy_latency_p99_ms"] = busy["latency_p99_ms"]
        results["busy_phases"] = busy["phases"]
    shutil.rmtree(work, ignore_errors=True)
    return results


def report(results: dict) -> list[str]:
    """The figures with their limits, and the per-phase trace, as printable lines."""
    lines = []
    for key, value in results.items():
        if key.endswith("phases"):
            continue
        limit = LIMITS.get(key.removeprefix("stream."))
        if limit:
            bound, kind = limit
            ok = value >= bound if kind == "min" else value <= bound
            floor = _floor_of(results, key)
            lines.append(f"{key:<45} {value:>10}   limit {'>=' if kind == 'min' else '<='} {bound}"
                         f"   {'ok' if ok else 'MISSED'}" + (f"   (floor {floor})" if floor is not None else ""))
        else:
            lines.append(f"{key:<45} {value:>10}")
    for key in ("phases", "busy_phases"):
        trace = results.get(key) or results.get(f"stream.{key}")
        if trace:
            lines.append(f"where the time goes ({key.replace('_', ' ')}, alert lane):")
            for phase, figures in trace.items():
                lines.append(f"    {phase:<12} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    return lines


def _floor_of(results: dict, key: str) -> float | None:
    """The floor's p99 at the rate of a latency figure (``…latency…_4k…`` is 4,000/s)."""
    if "latency" not in key or "p99" not in key or "floor" in key or "busy" in key:
        return None
    prefix = "stream." if key.startswith("stream.") else ""
    return results.get(f"{prefix}floor_latency{'_4k' if '_4k_' in key else ''}_p99_ms")
