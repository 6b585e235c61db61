"""`amlscore demo`: the whole product on embedded defaults, in one command.

Local Tansu broker + embedded ClickHouse in one directory → synthetic SOT (and a simulated
team's past decisions) → ingest → train on address labels → worker → a day of alerts streamed
live (plus a few malformed ones) → investigators decide the top of the live queue through the
API → their past decisions imported → retrain with the decisions → before/after → summary. Each step that
opens the embedded engine runs in a process of its own (it serves one process per directory);
every child is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from amlscore.demo_loop import LoopSummary, retrain_and_compare, work_the_queue
from amlscore.local_broker import LocalBroker, free_port
from batch import replay as rp
from batch.decisions_sim import TeamConfig
from batch.sot_reader import BatchKey, open_source
from batch.synth import DISPOSITIONS_FILE, SynthConfig, generate
from shared.kafka_io import ensure_topics, publish, read_topic
from shared.settings import Settings

Say = Callable[[str], None]
TOPICS = Settings.model_construct()  # the defaults, never the environment: the demo runs on those
DEMO_ENV = {"AMLSCORE_SESSION_TIMEOUT": "6", "AMLSCORE_REBALANCE_TIMEOUT": "6",
            "AMLSCORE_HEARTBEAT_INTERVAL": "1", "AMLSCORE_BATCH_WAIT": "0.05"}


@dataclass(frozen=True)
class DemoConfig:
    directory: Path
    days: int = 10
    alerts_per_day: int = 3000
    rate: float = 2000.0
    poison: int = 25
    seed: int = 7
    # A team that reviews a fifth of each day's alerts and an address-label file that covers 5 %
    # of addresses (what intelligence feeds give): the team's decisions are most of the labels.
    labelled_share: float = 0.05
    review_share: float = 0.2


@dataclass
class DemoSummary:
    alerts_in: int = 0
    scored: int = 0
    dead_lettered: int = 0
    clusters: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    top: list[dict] = field(default_factory=list)
    train_output: str = ""
    equal_to_backfill: int = 0  # streamed scores of the live day equal to the batch path's
    streamed: int = 0
    report_dir: str = ""
    model_version: str = ""
    api_top: dict = field(default_factory=dict)    # GET /scores of the live day, from the worker
    api_drift: dict = field(default_factory=dict)  # GET /drift
    loop: LoopSummary = field(default_factory=LoopSummary)


def _env(cfg: DemoConfig, bootstrap: str = "") -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env = {**clean, **DEMO_ENV, "AMLSCORE_HOME": str(cfg.directory / "home")}
    if bootstrap:
        env["AMLSCORE_KAFKA_BOOTSTRAP"] = bootstrap
    env["AMLSCORE_REVIEW_CAPACITY"] = str(max(10, round(cfg.review_share * cfg.alerts_per_day)))
    return env


def _amlscore(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "amlscore", *args], env=env, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"`amlscore {' '.join(args)}` failed:\n{done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def _worker(env: dict, log: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "amlscore", "worker", "--web-port", str(port)],
                               env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                               start_new_session=True)
    try:
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _get_json(port: int, path: str, token: str = "") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return orjson.loads(response.read())


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    """Until /ready says the worker consumes (group joined, partitions held): events sent
    before that would wait for the join."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{log.read_text()[-2000:]}")
        try:
            ready = _get_json(port, "/ready")
            if ready.get("consuming") and ready.get("assigned_partitions", {}).get(TOPICS.alerts_topic):
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the worker was not ready within {timeout}s:\n{log.read_text()[-2000:]}")


def _poison(template: dict, count: int) -> list[tuple[str, bytes, bytes]]:
    """Malformed alerts of four kinds, to show the dead-letter path (labelled as demo poison)."""
    kinds = [
        b"{truncated json",
        orjson.dumps({**template, "alert_id": None}),
        orjson.dumps({**template, "network": "unknown-chain"}),
        orjson.dumps(template).replace(b'"volume_usd":', b'"volume_usd":1e999,"_was":', 1),
    ]
    return [(TOPICS.alerts_topic, f"demo-poison-{i}".encode(), kinds[i % len(kinds)]) for i in range(count)]


async def event_to_score_latencies(bootstrap: str, keys: set[bytes],
                                   alerts_topic: str = TOPICS.alerts_topic,
                                   scores_topic: str = TOPICS.scores_topic,
                                   options: dict | None = None) -> list[float]:
    """Milliseconds from each alert's producer timestamp to its ScoreEvent's (first delivery)."""
    sent: dict[bytes, int] = {}
    for r in await read_topic(bootstrap, alerts_topic, expected=len(keys), idle=5, keys=keys,
                              options=options):
        sent.setdefault(r.key, r.timestamp)
    scored: dict[bytes, int] = {}
    for r in await read_topic(bootstrap, scores_topic, expected=len(keys), idle=5, keys=keys,
                              options=options):
        scored.setdefault(r.key, r.timestamp)
    return [float(scored[k] - sent[k]) for k in scored if k in sent]


def _read_back(env: dict, day: dt.date, version: str, limit: int = 10) -> tuple[list[dict], int, int]:
    """The day's riskiest alerts, and how many of its streamed scores equal (bit for bit) what
    the batch path computes for the same alerts from ClickHouse: (top, equal, streamed)."""
    from shared.context import Context
    from shared.settings import Settings

    context = Context(Settings(home=Path(env["AMLSCORE_HOME"])))
    streamed = context.scores.alert_scores(["ethereum"], day, day, 7, version)
    streamed = streamed[streamed["source"] == "stream"].set_index("alert_id")
    alerts = context.raw.alerts("ethereum", day, 7)
    batch = context.scoring(version).score_alerts(alerts, context.raw.features("ethereum", day, 7))
    batch = batch.set_index("alert_id").reindex(streamed.index)
    equal = int(((batch["score"].to_numpy() == streamed["score"].to_numpy())
                 & (batch["rank_score"].to_numpy() == streamed["rank_score"].to_numpy())).sum())
    return context.scores.top_alerts("ethereum", day, 7, version, limit), equal, len(streamed)


def run_demo(cfg: DemoConfig, say: Say, on_progress: Callable[[int, int], None] | None = None) -> DemoSummary:
    if cfg.directory.exists():
        shutil.rmtree(cfg.directory)  # every run starts from nothing, so re-running works
    cfg.directory.mkdir(parents=True)
    summary = DemoSummary()
    sot, env = cfg.directory / "sot", _env(cfg)
    start = dt.date(2025, 1, 1)
    live_day = start + dt.timedelta(days=cfg.days - 1)
    token = secrets.token_hex(16)  # the demo investigator's API token: decisions need one
    capacity = int(env["AMLSCORE_REVIEW_CAPACITY"])

    say(f"[1/7] synthetic SOT: {cfg.days} days × ~{cfg.alerts_per_day} alerts → {sot}, and the "
        f"team's decisions on the top {capacity} alerts of each earlier day")
    generate(SynthConfig(out=sot, start=start, days=cfg.days, alerts_per_day=cfg.alerts_per_day,
                         seed=cfg.seed, labelled_share=cfg.labelled_share,
                         team=TeamConfig(capacity)))
    history = cfg.directory / "decisions_before_today.parquet"
    decided = pq.read_table(sot / DISPOSITIONS_FILE)
    pq.write_table(decided.filter(pc.less(decided["processing_date"], pa.scalar(live_day, pa.date32()))),
                   history)  # the live day is decided below, on the worker's queue
    say("[2/7] ingest into the embedded ClickHouse (checksums, columns, types checked first)")
    # The live day is ingested too, as an upstream SOT job would have loaded its address
    # features: alerts streamed without embedded features find them, as backfill does.
    say("      " + _amlscore(env, "ingest", "--source", str(sot)).strip())
    say("[3/7] train alert_scorer, alert_ranker, cluster_scorer on the days before the live one "
        "(last 2 held out), from address labels: no decision is stored yet")
    summary.train_output = _amlscore(env, "train", "--holdout-days", "2",
                                     "--end", str(live_day - dt.timedelta(days=1)))
    summary.model_version = summary.train_output.split("model version ", 1)[1].split()[0]
    summary.report_dir = str(cfg.directory / "home" / "models" / summary.model_version / "report")

    fs, root = open_source(str(sot))
    report = rp.ReplayReport()
    records = list(rp.records(rp.batches_from_sot(fs, root, [BatchKey("ethereum", live_day, 7)]),
                              TOPICS.alerts_topic, TOPICS.clusters_topic, "mixed", report))
    template = orjson.loads(next(v for t, _, v in records if t == TOPICS.alerts_topic))
    poison = _poison(template, cfg.poison)
    step = max(1, len(records) // max(1, len(poison)))
    mixed: list = []
    for i, record in enumerate(records):
        mixed.append(record)
        if poison and i % step == step - 1:
            mixed.append(poison.pop())
    mixed += poison
    summary.alerts_in = sum(1 for t, _, _ in mixed if t == TOPICS.alerts_topic)

    with LocalBroker(log_path=cfg.directory / "tansu.log") as broker:
        env = {**_env(cfg, broker.bootstrap), "AMLSCORE_API_TOKEN": f"investigator:{token}"}
        asyncio.run(ensure_topics(broker.bootstrap, [TOPICS.alerts_topic, TOPICS.clusters_topic,
                                                     TOPICS.dispositions_topic, TOPICS.scores_topic,
                                                     TOPICS.dlq_topic], TOPICS.topic_partitions))
        say(f"[4/7] local broker on {broker.bootstrap}; starting the worker")
        log = cfg.directory / "worker.log"
        with _worker(env, log) as (process, port):
            _wait_ready(process, port, log)
            say(f"[5/7] streaming {live_day} live: {report.alerts} alerts + {cfg.poison} malformed "
                f"+ {report.clusters} clusters at {cfg.rate:.0f} msg/s")
            errors: list[BaseException] = []

            def stream_live() -> None:
                try:
                    asyncio.run(publish(iter(mixed), broker.bootstrap, cfg.rate))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            publisher = threading.Thread(target=stream_live, daemon=True)
            started = time.monotonic()
            publisher.start()
            expected_alerts = summary.alerts_in - cfg.poison
            deadline = started + 300
            while True:
                if errors:
                    raise RuntimeError(f"publishing failed: {errors[0]}")
                metrics = _metrics(port)
                scored = int(metrics.get('amlscore_scored_total{kind="alert"}', 0))
                dead = int(sum(v for k, v in metrics.items() if k.startswith("amlscore_dead_lettered_total")))
                clusters = int(metrics.get('amlscore_scored_total{kind="cluster"}', 0))
                # A version trained without a cluster_scorer stores clusters unscored: done too.
                unscored = int(metrics.get('amlscore_unscored_total{kind="cluster"}', 0))
                if on_progress:
                    on_progress(scored + dead, summary.alerts_in)
                if scored >= expected_alerts and dead >= cfg.poison and clusters + unscored >= report.clusters:
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the stream did not complete:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            summary.seconds = time.monotonic() - started
            publisher.join(30)
            summary.scored, summary.dead_lettered, summary.clusters = scored, dead, clusters
            keys = {k for t, k, _ in records if t == TOPICS.alerts_topic}
            summary.latencies_ms = asyncio.run(event_to_score_latencies(broker.bootstrap, keys))
            summary.api_top = _get_json(port, f"/scores?network=ethereum&date={live_day}&limit=5", token)
            summary.api_drift = _get_json(port, "/drift", token)
            half = capacity // 2
            say(f"[6/7] investigators work the live queue: GET /queue, then POST a decision on "
                f"each of its top {half} alerts")
            summary.loop.posted, summary.loop.queue_left = work_the_queue(port, token, sot, live_day, half)
    summary.top, summary.equal_to_backfill, summary.streamed = _read_back(env, live_day, summary.model_version)
    say("[7/7] import the team's earlier decisions, retrain with them over the same dates (a "
        "candidate) and compare both versions on the first one's held-out dates")
    retrain_and_compare(lambda *args: _amlscore(env, *args), cfg.directory / "home", sot, history,
                        summary.model_version, start, live_day, summary.loop)
    return summary


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
