"""Nothing hangs silently: against a ClickHouse that accepts connections and never answers, a
batch command and the worker each end with one line and exit 1 within the time limit, instead
of waiting forever (commands run as a user would, in an empty directory)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import pytest

from shared.registry import DirectoryModelRegistry
from tests.stream_harness import PYTHON

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_server():
    """Accepts, reads, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("command", [["backfill"], ["export", "--out", "x.parquet"], ["worker"]])
def test_an_engine_that_never_answers_ends_the_command_with_one_line(silent_server, bundle, tmp_path,
                                                                   command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    env.update(AMLSCORE_CLICKHOUSE_URL=f"http://127.0.0.1:{silent_server}/amlscore",
               AMLSCORE_CLICKHOUSE_TIMEOUT="2", AMLSCORE_KAFKA_BOOTSTRAP="127.0.0.1:1",
               AMLSCORE_MODELS_DIR=str(tmp_path / "models"))
    registry = DirectoryModelRegistry(tmp_path / "models")  # the worker gets as far as ClickHouse
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        model = getattr(bundle, name)
        registry.save("v1", name, model.booster, model.metadata)
    registry.promote("v1")
    started = time.monotonic()
    done = subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", *command], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode in (1, 2), done.stderr
    lines = done.stderr.strip().splitlines()
    if command != ["worker"]:  # a worker's log is its record; a command says one line
        assert len(lines) == 1, done.stderr
    assert "ClickHouse" in lines[-1] and "Traceback" not in done.stderr
    assert elapsed < 45, f"took {elapsed:.0f}s"
