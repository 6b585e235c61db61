"""Keep freed memory from piling up in the worker's processes.

Each micro-batch allocates and frees a few MB (pickles, frames). glibc raises its mmap threshold
after every such free, so later blocks of that size come from the heap, which rarely shrinks,
and every thread gets a heap of its own; the worker's resident memory then grows by hundreds of
MB over a long run. A fixed threshold sends large blocks to mmap (returned to the OS on free)
and two arenas bound the per-thread heaps. No-op where glibc's mallopt is absent."""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def limit_heap_growth(mmap_threshold: int = 256 * 1024, arenas: int = 2) -> bool:
    """Call before threads start; True when applied."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_ARENA_MAX, arenas))
