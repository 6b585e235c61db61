"""The least the worker's scoring process can hold: Python with the modules it imports, the
embedded engine open on an empty directory, and the promoted models loaded — before it has
scored anything. The stream benchmark prints it beside the worker's RSS; on its own:
``python -m tests.benchmarks.memory_floor AMLSCORE_HOME``."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.proc_memory import status_mb


def _rss_mb() -> float:
    return round(status_mb("VmRSS"), 1)


def _child(home: str) -> dict[str, float]:
    steps = {"python": _rss_mb()}
    import stream.scoring.main  # noqa: F401 - everything the scoring process imports
    from stream.memory import return_engine_memory_at_once
    return_engine_memory_at_once()  # as the scoring process does, before the engine loads
    from shared.clickhouse import connect, parse_clickhouse_url
    from shared.pandas_gate import keep_pandas_out
    from shared.registry import DirectoryModelRegistry
    from shared.scoring import RiskScoring
    keep_pandas_out()  # as the scoring process does once its service is built
    steps["imports"] = _rss_mb()
    with tempfile.TemporaryDirectory() as empty:
        client = connect(parse_clickhouse_url(f"chdb://{empty}/engine", "floor"))
        client.query("SELECT 1")
        steps["engine_open"] = _rss_mb()
        RiskScoring(DirectoryModelRegistry(Path(home) / "models").load_current())
        steps["models_loaded"] = _rss_mb()
    return steps


def measure(home: Path) -> dict[str, float]:
    """RSS (MB) after each step, in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.memory_floor", str(home)],
                          check=True, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))
