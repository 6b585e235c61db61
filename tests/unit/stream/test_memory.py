"""The worker's processes freeze what they hold from startup out of the collector's walks and
give freed memory back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_objects_alive_at_startup_are_left_out_of_later_collections():
    # A process of its own: freezing is process-wide and lasts to the process's end.
    probe = textwrap.dedent("""
        import gc
        from stream.memory import freeze_startup_objects
        held = [[i] for i in range(50_000)]  # what a process holds from its start to its end
        before = len(gc.get_objects(generation=2))
        freeze_startup_objects()
        after = len(gc.get_objects(generation=2))
        print(before, after, gc.get_freeze_count())
    """)
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                          timeout=60)
    before, after, frozen = map(int, done.stdout.split())
    assert before > 50_000 and after < 1000 and frozen > 50_000


def test_the_engine_allocator_returns_freed_pages_unless_the_environment_says_otherwise(monkeypatch):
    from stream.memory import ENGINE_ALLOCATOR, return_engine_memory_at_once

    monkeypatch.delenv("JE_MALLOC_CONF", raising=False)
    return_engine_memory_at_once()
    assert os.environ["JE_MALLOC_CONF"] == ENGINE_ALLOCATOR["JE_MALLOC_CONF"]
    monkeypatch.setenv("JE_MALLOC_CONF", "dirty_decay_ms:5000")
    return_engine_memory_at_once()
    assert os.environ["JE_MALLOC_CONF"] == "dirty_decay_ms:5000"


def test_freed_heap_pages_go_back_to_the_os():
    # A process of its own: what is resident depends on everything the process did before.
    probe = textwrap.dedent("""
        from pathlib import Path
        from stream.memory import return_freed_heap
        def anon_mb():
            line = [x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssAnon")]
            return int(line[0].split()[1]) // 1024
        blocks = [bytes(1000) + i.to_bytes(4, "little") for i in range(100_000)]  # malloc'd, not pymalloc
        kept = blocks[::32]  # pins the heap: free() alone cannot shrink it from the top
        del blocks
        before = anon_mb()
        trimmed = return_freed_heap()
        print(trimmed, before, anon_mb(), len(kept))
    """)
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                          timeout=60)
    trimmed, before, after, _ = done.stdout.split()
    assert trimmed == "True"
    assert int(before) - int(after) >= 50, (before, after)


def test_arrow_buffers_come_from_the_c_allocator():
    probe = ("import pyarrow as pa; from stream.memory import arrow_buffers_from_malloc; "
             "arrow_buffers_from_malloc(); print(pa.default_memory_pool().backend_name, "
             "pa.array(range(1000)).buffers()[1] is not None)")
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["system", "True"]
