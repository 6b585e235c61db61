"""The embedded engine starts with amlscore's server settings: merges at a lower OS priority and
caches bounded (by default each may take half the machine's RAM, so a long-running worker would
grow with the data it touched)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import json, sys
    from shared.clickhouse import connect, parse_clickhouse_url
    client = connect(parse_clickhouse_url("chdb://" + sys.argv[1], "probe"))
    rows = client.query("SELECT name, value FROM system.server_settings").result_rows
    print(json.dumps(dict(rows)))
""")


def test_a_fresh_engine_has_bounded_caches_and_low_priority_merges(tmp_path):
    # A process of its own: the engine's server settings are fixed when a process first opens it.
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "engine")], check=True,
                          capture_output=True, text=True, timeout=120)
    settings = json.loads(done.stdout.strip().splitlines()[-1])
    assert settings["os_threads_nice_value_merge_mutate"] == "10"
    for cache in ("mark_cache_size", "primary_index_cache_size", "index_mark_cache_size",
                  "query_condition_cache_size", "compiled_expression_cache_size"):
        assert 0 < int(settings[cache]) <= 256 << 20, (cache, settings[cache])
