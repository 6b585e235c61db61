"""`amlscore demo`, the README's first command, end to end: summary printed, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _processes_using(directory: Path) -> list[int]:
    marker = f"AMLSCORE_HOME={directory}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_demo_runs_end_to_end_and_leaves_no_process(tmp_path):
    directory = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMLSCORE_")}
    for _run in range(2):  # re-running works: the second run starts from an emptied directory
        done = subprocess.run([sys.executable, "-m", "amlscore", "demo", "--dir", str(directory),
                               "--alerts-per-day", "1200"], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        assert "25 dead-lettered" in out and "ten riskiest alerts of the day:" in out
        assert "event→score latency p50" in out and "held-out AUC" in out
        equal = out.split("stream = backfill: ", 1)[1].split()
        assert equal[0] == equal[2] and int(equal[0]) > 1000, out  # every streamed score
        assert "GET /scores?network=ethereum" in out and out.count("  #") == 5
        assert "GET /drift: " in out and " stable; highest PSI " in out
        assert len([line for line in out.splitlines() if " because " in line]) == 10
        assert "investigators' decisions: 120 posted on the live queue" in out, out
        before, after = (float(line.split(" recall ", 1)[1].split()[0]) for line in out.splitlines()
                         if line.startswith(("    before,", "    after,")))
        assert after > before, out  # the team's decisions, as labels, find more at capacity
        assert (directory / "home" / "models").is_dir()
        assert _processes_using(directory / "home") == []
