"""A backlog of envelopes is not read ahead into the Faust process's memory: its stream buffer is
bounded in bytes (twice AMLSCORE_BATCH_MAX_BYTES), so the process stays near its working size
while a backlog many times that size is scored.

Measured on a 2-core box with this test's 157 MB backlog, against an idle baseline: without the
bound the Faust process grew 131 MB, about four fifths of the backlog; with it 33 MB locally and
46 MB on CI, of which some 16 MB is the first batches' warm-up and the rest transient peaks of
10–20 MB. So the baseline is taken after a warm-up backlog has been scored (then: 20 MB with the
bound, 92 MB without), and the limit is a third of the backlog (52 MB): what a read-ahead cannot
stay under, and what the bounded process stays under with room for a noisier machine."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import orjson
import pytest

from batch import replay as rp
from tests.proc_memory import status_mb
from tests.stream_harness import (
    LAST,
    distinct,
    home_copy,
    produce,
    read_topic,
    renamed_copies,
    sot_records,
    stream_env,
)

pytestmark = pytest.mark.integration

BUFFER_BYTES = 2 * 256 * 1024  # the worker below: AMLSCORE_BATCH_MAX_BYTES=262144
COPIES = 120  # of the last day: about 150 MB of envelopes
WARM_UP_COPIES = 4
ENVELOPE_ALERTS = 20  # fit the 64 KiB message limit of the test settings
SCORED = 'amlscore_scored_total{kind="alert"}'


def _envelopes(alerts: list, copies: int, tag: str) -> list:
    return list(rp.envelopes(iter(renamed_copies(alerts, copies, tag)), ENVELOPE_ALERTS))


def _wait_scored(worker, total: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while worker.metrics().get(SCORED, 0.0) < total:
        assert time.monotonic() < deadline, f"{total:.0f} alerts were not scored in {timeout:.0f} s"
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_a_backlog_of_envelopes_is_not_read_ahead_into_memory(prepared, broker, spawn, tmp_path):
    alerts, _ = sot_records(broker, prepared["sot"], LAST, features="embed", clusters=False)
    backlog = _envelopes(alerts, COPIES, "backlog")
    backlog_mb = sum(len(v) for _, _, v in backlog) / 2**20
    growth_limit_mb = backlog_mb / 3
    assert growth_limit_mb > 100 * BUFFER_BYTES / 2**20, "the backlog must dwarf the buffer's bound"
    worker = spawn(stream_env(home_copy(prepared, tmp_path / "home"), broker,
                              AMLSCORE_BATCH_MAX_BYTES=str(BUFFER_BYTES // 2)))
    pid = worker.process.pid
    produce(broker.bootstrap, _envelopes(alerts, WARM_UP_COPIES, "warm-up"))
    _wait_scored(worker, WARM_UP_COPIES * len(alerts), timeout=120)
    settled = []
    for _ in range(20):
        settled.append(status_mb("VmRSS", pid))
        time.sleep(0.05)
    baseline = statistics.median(settled)
    peak, stop = [baseline], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], status_mb("VmRSS", pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        produce(broker.bootstrap, backlog)
        _wait_scored(worker, (WARM_UP_COPIES + COPIES) * len(alerts), timeout=300)
    finally:
        stop.set()
        watcher.join()
    assert peak[0] - baseline < growth_limit_mb, (
        f"the Faust process grew {peak[0] - baseline:.0f} MB ({baseline:.0f} → {peak[0]:.0f}) while "
        f"{backlog_mb:.0f} MB of envelopes waited (limit {growth_limit_mb:.0f} MB)")
    assert worker.stop() == 0


def _libraries(pid: int) -> set[str]:
    """The files mapped into a process: every imported C extension is one."""
    return {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
            if len(line.split()) >= 6}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads mapped files from /proc")
def _niceness(pid: int) -> dict[int, int]:
    """Niceness of each thread of a process, by thread id (``/proc/<pid>/task/<tid>/stat``)."""
    return {int(task.name): int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
            for task in Path(f"/proc/{pid}/task").iterdir()}


def test_the_scoring_process_scores_alerts_without_loading_pandas_below_the_faust_process(
        prepared, broker, spawn, tmp_path):
    """pandas holds about 30 MB of a process; the alert path works on numpy columns, so the
    scoring process loads it only when a cluster (scored on frames) arrives. Features embedded
    and looked up, the scores are the backfill's, bit for bit. The scoring process runs at the
    default AMLSCORE_SCORING_NICE below the Faust process, and none of the engine's threads runs
    above the Faust process (as root the engine raises some to -20 when it opens)."""
    alerts, report = sot_records(broker, prepared["sot"], LAST, features="mixed", clusters=False)
    worker = spawn(stream_env(home_copy(prepared, tmp_path / "home"), broker))
    produce(broker.bootstrap, alerts)
    scores = read_topic(broker.bootstrap, broker.topics["scores"], expected=report.alerts, timeout=120)
    scoring_pid = orjson.loads(worker.get("/live")[1])["scoring_process"]["pid"]
    libraries = _libraries(scoring_pid)
    faust_niceness = _niceness(worker.process.pid)[worker.process.pid]
    scoring_threads = _niceness(scoring_pid)
    assert worker.stop() == 0
    assert scoring_threads[scoring_pid] == min(19, faust_niceness + 5)
    assert min(scoring_threads.values()) >= faust_niceness, scoring_threads
    assert any("libxgboost" in f for f in libraries), "the maps read are not the scoring process's"
    loaded = sorted(f for f in libraries if "/pandas/" in f)
    assert loaded == [], f"the scoring process loaded pandas: {loaded[:3]}"
    events = distinct(scores)
    assert len(events) == report.alerts
    for alert_id, event in events.items():
        reference = prepared["backfill"][alert_id]
        assert (event["score"], event["rank_score"]) == (reference["score"], reference["rank_score"])
        assert orjson.dumps(event["explanation"]).decode() == reference["explanation"]
