"""CPU priority inside the scoring process. Linux schedules every thread on its own, and a thread
starts at the niceness of the thread that started it.

The Faust process does the per-event work whose delay is the stream's latency: fetching,
publishing, acknowledging, answering health checks. The scoring process does per-micro-batch
work, and natural batching absorbs a delay there: when it gets the CPU later, its next
micro-batch is larger, and cheaper per alert (every micro-batch has fixed costs: an engine part
per table, a call per model). So on a box short of CPU the scoring process runs below the Faust
process (``AMLSCORE_SCORING_NICE``), and its read threads below scoring.

Priorities are only ever lowered (niceness raised), which needs no privilege, and relative to the
niceness the process started with: a worker started under ``nice`` keeps the same order.
"""

from __future__ import annotations

import os
import threading

READ_NICENESS = 10  # read threads, above the scoring thread's: reads yield the CPU to scoring
MAX_NICENESS = 19


def _threads() -> list[int]:
    """This process's thread ids (Linux's /proc; elsewhere the calling thread's alone)."""
    try:
        return [int(task) for task in os.listdir("/proc/self/task")]
    except OSError:
        return [threading.get_native_id()]


def _lower(tid: int, by: int) -> None:
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if by > 0 and now < MAX_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICENESS, now + by))
    except (AttributeError, OSError):
        pass  # not Linux, not allowed, or the thread has ended: it runs as it did


def lower_this_thread(by: int) -> None:
    """Raise the calling thread's niceness by ``by`` (capped at 19); every thread it starts from
    now on inherits it."""
    _lower(threading.get_native_id(), by)


def lower_this_process(by: int) -> int:
    """Every thread of this process, also those already started (the numerical libraries start
    theirs as they are imported), and through them every thread started later. Returns the
    calling thread's niceness now."""
    for tid in _threads():
        _lower(tid, by)
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0


def level_threads(niceness: int) -> None:
    """Every thread of this process that runs above ``niceness`` (a lower value) put back to it.
    With the right to raise priorities (root, CAP_SYS_NICE), the embedded engine raises one of its
    threads to -20 as it starts, and the threads that thread starts inherit it: the engine's
    pools then ran above the Faust process (measured after opening the engine as root: its
    MemoryWorker at -20 each time, and 1 to 18 of its 30-40 threads, from run to run). Without that right nothing is ever above: this does nothing."""
    for tid in _threads():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except (AttributeError, OSError):
            pass  # ended meanwhile, or not allowed


def lower_read_thread() -> None:
    """A read thread (its Python: answers made as JSON) gets the CPU after the scoring thread,
    not beside it. The engine's threads that run the query itself take a lower priority from the
    query's settings (``read_limits``)."""
    lower_this_thread(READ_NICENESS)
