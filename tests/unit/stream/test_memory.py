"""The worker's processes freeze what they hold from startup out of the collector's walks."""

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
