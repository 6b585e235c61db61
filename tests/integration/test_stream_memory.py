"""A backlog of envelopes is not read ahead into the Faust process's memory: its stream buffer is
bounded in bytes (twice AMLSCORE_BATCH_MAX_BYTES), so the process stays near its idle size while
a backlog many times that size is scored. Measured before the bound, with a 150 MB backlog of
500-alert envelopes: the Faust process went from 80 to 219 MB; 300 MB took it to 371 MB."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from batch import replay as rp
from tests.stream_harness import LAST, home_copy, produce, renamed_copies, sot_records, stream_env

pytestmark = pytest.mark.integration

BUFFER_BYTES = 2 * 256 * 1024  # the worker below: AMLSCORE_BATCH_MAX_BYTES=262144
GROWTH_LIMIT_MB = 40
COPIES = 120  # of the last day: about 150 MB of envelopes


def _own_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from /proc")
def test_a_backlog_of_envelopes_is_not_read_ahead_into_memory(prepared, broker, spawn, tmp_path):
    alerts, _ = sot_records(broker, prepared["sot"], LAST, features="embed", clusters=False)
    backlog = list(rp.envelopes(iter(renamed_copies(alerts, COPIES, "backlog")), 20))  # 20 fit the 64 KiB test limit
    backlog_mb = sum(len(v) for _, _, v in backlog) / 2**20
    assert backlog_mb > 3 * GROWTH_LIMIT_MB, "the backlog must dwarf the limit to show anything"
    worker = spawn(stream_env(home_copy(prepared, tmp_path / "home"), broker,
                              AMLSCORE_BATCH_MAX_BYTES=str(BUFFER_BYTES // 2)))
    idle = _own_rss_mb(worker.process.pid)
    peak, stop = [idle], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _own_rss_mb(worker.process.pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        produce(broker.bootstrap, backlog)
        total, deadline = COPIES * len(alerts), time.monotonic() + 300
        while worker.metrics().get('amlscore_scored_total{kind="alert"}', 0.0) < total:
            assert time.monotonic() < deadline, "the backlog was not scored"
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join()
    assert peak[0] - idle < GROWTH_LIMIT_MB, (
        f"the Faust process grew {peak[0] - idle:.0f} MB ({idle:.0f} → {peak[0]:.0f}) while "
        f"{backlog_mb:.0f} MB of envelopes waited")
    assert worker.stop() == 0
