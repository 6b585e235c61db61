"""CPU use as Linux reports it in ``/proc``: of a process tree, and of the whole box, over a window
of time. A latency figure taken while the box is saturated says more with these beside it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the worker: its Faust process and scoring process)."""
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        try:
            stack += [int(child) for task in Path(f"/proc/{current}/task").iterdir()
                      for child in (task / "children").read_text().split()]
        except OSError:
            continue  # it ended meanwhile
    return tree


def _process_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of every thread of ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def _tree_seconds(tree: list[int]) -> tuple[float, float]:
    times = [_process_seconds(p) for p in tree]
    return sum(u for u, _ in times), sum(s for _, s in times)


def _box_busy_seconds() -> float:
    """CPU seconds every core has been busy since boot (user, system, interrupts, stolen)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # less idle and iowait


@dataclass
class CpuWindow:
    box_pct: float = 0.0     # the box's cores busy, in % of one core (2 cores: at most 200)
    tree_pct: float = 0.0    # the process tree's share, in % of one core
    tree_system_pct: float = 0.0  # of which in the kernel (system calls: files, sockets, pages)


@contextlib.contextmanager
def cpu_window(pid: int) -> Iterator[CpuWindow]:
    """CPU of the box and of ``pid``'s tree while the block runs (the tree as it was at the start:
    the worker does not fork during a run)."""
    tree = process_tree(pid)
    window = CpuWindow()
    user_before, system_before = _tree_seconds(tree)
    busy_before, wall_before = _box_busy_seconds(), os.times().elapsed
    yield window
    busy_after = _box_busy_seconds()
    wall = os.times().elapsed - wall_before
    if wall > 0:
        window.box_pct = round((busy_after - busy_before) / wall * 100, 1)
        user, system = _tree_seconds(tree)
        window.tree_pct = round((user + system - user_before - system_before) / wall * 100, 1)
        window.tree_system_pct = round((system - system_before) / wall * 100, 1)
