"""A process's memory as Linux reports it in ``/proc/PID/status``; nothing else imported, so a
benchmark may read its own figure before it loads anything."""

from __future__ import annotations

from pathlib import Path


def status_mb(field: str = "VmRSS", pid: int | str = "self") -> float:
    """``field`` (``VmRSS``: resident; ``RssAnon``: its anonymous part; ``VmHWM``: the peak) in
    MB; 0 when the kernel does not report it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0
