"""The benchmarks' own measuring helpers: the CPU a process tree and the box use over a window,
and which floor a latency figure is printed beside."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.benchmarks.stream_bench import _floor_of, report
from tests.proc_cpu import cpu_window, process_tree


def test_cpu_window_counts_a_busy_child_and_not_a_sleeping_one():
    spin = "import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time\\ntime.sleep(30)'])\n" \
           "end = time.monotonic() + 30\nwhile time.monotonic() < end: pass"
    parent = subprocess.Popen([sys.executable, "-c", spin])
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(parent.pid)) < 2:  # the sleeping grandchild is in the tree too
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with cpu_window(parent.pid) as busy:
            time.sleep(1.0)
        idle_child = process_tree(parent.pid)[1]
        with cpu_window(idle_child) as idle:
            time.sleep(0.5)
    finally:
        for pid in process_tree(parent.pid)[1:]:
            subprocess.run(["kill", str(pid)], check=False)
        parent.kill()
        parent.wait()
    assert 50 <= busy.tree_pct <= 110      # one spinning process: about one core
    assert busy.tree_system_pct < 20        # ... in Python, hardly ever in the kernel
    assert busy.box_pct >= busy.tree_pct - 10
    assert idle.tree_pct < 10


def test_cpu_window_tells_the_kernels_share():
    copying = "import os\nfd = os.open('/dev/zero', os.O_RDONLY)\nwhile True: os.read(fd, 1 << 20)"
    child = subprocess.Popen([sys.executable, "-c", copying])
    try:
        time.sleep(0.3)
        with cpu_window(child.pid) as window:
            time.sleep(1.0)
    finally:
        child.kill()
        child.wait()
    assert window.tree_pct >= 50
    assert window.tree_system_pct >= window.tree_pct / 2  # zeroing pages is the kernel's work


def test_each_p99_is_printed_beside_the_floor_at_its_rate():
    results = {"stream.floor_latency_p99_ms": 90.0, "stream.floor_latency_4k_p99_ms": 310.0,
               "stream.latency_p99_ms_embedded": 120.0, "stream.latency_fresh_4k_p99_ms_lookup": 500.0,
               "stream.latency_4k_box_cpu_pct_lookup": 190.0, "stream.busy_latency_p99_ms": 900.0}
    assert _floor_of(results, "stream.latency_p99_ms_embedded") == 90.0
    assert _floor_of(results, "stream.latency_fresh_4k_p99_ms_lookup") == 310.0
    assert _floor_of(results, "stream.latency_4k_box_cpu_pct_lookup") is None
    assert _floor_of(results, "stream.floor_latency_p99_ms") is None
    assert _floor_of(results, "stream.busy_latency_p99_ms") is None  # the floor ran on a quiet box
    lines = report(results)
    assert any("latency_p99_ms_embedded" in line and "ok" in line and "(floor 90.0)" in line for line in lines)
    assert any("latency_fresh_4k_p99_ms_lookup" in line and "MISSED" in line and "(floor 310.0)" in line
               for line in lines)
