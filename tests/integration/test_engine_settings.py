"""The embedded engine starts with amlscore's server settings: merges at a lower OS priority and
caches bounded (by default each may take half the machine's RAM, so a long-running worker would
grow with the data it touched). Its Arrow reads run on one thread (the engine's multi-threaded
Arrow output can hang), in one engine call where the query allows it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

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


def queries_so_far(client) -> int:  # noqa: ANN001
    """The engine's own count of the queries it has run (this one included)."""
    return client.query("SELECT value FROM system.events WHERE event = 'Query'").result_rows[0][0]


@pytest.mark.parametrize("query", [
    "SELECT getSetting('max_threads') AS t, {tag:String} AS tag",
    "SELECT getSetting('max_threads') AS t, {tag:String} AS tag;",
    "SELECT getSetting('max_threads') AS t, {tag:String} AS tag -- a comment at the end",
    "SELECT t, tag FROM (SELECT getSetting('max_threads') AS t, {tag:String} AS tag)"
    " UNION ALL SELECT getSetting('max_threads'), 'second'",
])
def test_an_arrow_read_runs_on_one_thread_in_one_engine_call(chdb_client, query):
    before = queries_so_far(chdb_client)
    table = chdb_client.query_arrow(query, parameters={"tag": "first"})
    # the read and the count after it; a per-call setting would add three (read, SET, SET back)
    assert queries_so_far(chdb_client) - before == 2
    assert set(table.column("t").to_pylist()) == {1}
    assert table.column("tag").to_pylist()[0] == "first"


@pytest.mark.parametrize("own_clause, caller_settings", [
    (" SETTINGS max_block_size = 4321", None),
    ("", {"max_block_size": 4321}),
])
def test_an_arrow_read_with_settings_of_its_own_keeps_them_and_one_thread(
        chdb_client, own_clause, caller_settings):
    table = chdb_client.query_arrow(
        "SELECT getSetting('max_threads') AS t, getSetting('max_block_size') AS b" + own_clause,
        settings=caller_settings)
    assert table.to_pylist() == [{"t": 1, "b": 4321}]
    after = chdb_client.query("SELECT getSetting('max_block_size') AS b").result_rows
    assert after != [(4321,)], "a per-call setting leaked into the session"
