"""What the engine's merges of the stream's parts cost in memory and CPU, with this release's
table settings (:data:`shared.clickhouse.ddl.MERGE_MEMORY` and ``MERGE_SELECTION``) beside
MergeTree's defaults, in one run: ``python -m tests.benchmarks.run merges [--alerts N]``.

Each side is a process of its own, set up as the worker's scoring process is (the engine's
allocator returns freed pages at once, Arrow allocates from malloc), with an embedded engine on an
empty directory. It writes N alerts the way the stream does, one part per table per micro-batch into
``raw_alerts`` and ``alert_scores``, at most 50 micro-batches a second, while the engine merges in
the background: N alerts in micro-batches of 2,000 (a backlog), then ``STEADY_ALERTS`` in
micro-batches of ``STEADY_BATCH`` (what natural batching makes of a steady rate). Rows carry the sizes of the stream's (a description, 300-700
bytes of evidence, a 260-byte explanation); their text is random, as the engine's merges do not
care what it says.

The steady rate runs a third side, with the merges stopped: the store's floor, where no part is
replaced and so none of its files deleted. Every merge deletes the files of the parts it replaced (about a
dozen per compact part), and on ext4 without a journal each later new file costs a scan past the
inodes freed in the last minute or more; the kernel time per micro-batch beside this side says
what the merges cost on the filesystem under ``TMPDIR``."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.proc_memory import status_mb

BATCH = 2_000
STEADY_BATCH, STEADY_ALERTS = 100, 60_000
SIDES = {"defaults": "MergeTree's defaults", "release": "this release (schema 8)"}
STOPPED = "stopped"  # steady rate only: merges stopped, no part replaced, none of its files deleted


def _micro_batch(i: int, n: int, rnd: random.Random, text: list[str]) -> tuple:
    import pyarrow as pa

    ids = [f"bench-{i}-{j}" for j in range(n)]
    addresses = [f"0x{rnd.getrandbits(160):040x}" for _ in range(n)]
    key = {"network": ["ethereum"] * n,
           "processing_date": pa.array([19_700 + i * n // 200_000] * n, pa.date32()),
           "window_days": pa.array([7] * n, pa.uint16())}
    now = pa.array([dt.datetime.now(dt.UTC)] * n, pa.timestamp("ms", tz="UTC"))
    raw = pa.table({
        **key, "alert_id": ids, "address": addresses, "typology_type": ["layering"] * n,
        "pattern_id": [f"p{j % 97}" for j in range(n)], "pattern_type": ["cycle"] * n,
        "severity": ["high"] * n, "suspected_address_type": ["eoa"] * n,
        "suspected_address_subtype": [""] * n, "alert_confidence_score": [rnd.random() for _ in range(n)],
        "description": [text[j % 64][:150] for j in range(n)],
        "volume_usd": [rnd.random() * 1e5 for _ in range(n)],
        "evidence_json": [text[j * 7 % 64][:300 + j % 400] for j in range(n)],
        "risk_indicators": [["fan_in", "round_amounts"]] * n,
        "_version": pa.array([i] * n, pa.uint64()), "_ingested_at": now})
    scores = pa.table({
        **key, "alert_id": ids, "address": addresses, "model_version": ["v1"] * n,
        "score": [rnd.random() for _ in range(n)], "rank_score": [rnd.random() for _ in range(n)],
        "risk_level": ["high"] * n, "explanation": [text[j * 3 % 64][:260] for j in range(n)],
        "scored_at": now, "source": ["stream"] * n, "qc_sample": [False] * n})
    return raw, scores


def _side(side: str, alerts: int, batch: int) -> dict[str, float]:
    from stream.memory import arrow_buffers_from_malloc, return_engine_memory_at_once

    return_engine_memory_at_once()
    arrow_buffers_from_malloc()
    from shared.clickhouse import connect, parse_clickhouse_url
    from shared.clickhouse.ddl import MERGE_MEMORY, MERGE_SELECTION
    from shared.clickhouse.migrations import ensure_schema

    # the engine may still be writing a merge when the directory goes: what it leaves is ignored
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as empty:
        client = connect(parse_clickhouse_url(f"chdb://{empty}/engine", "bench"))
        ensure_schema(client, "bench")
        if side == "defaults":
            for table in ("raw_alerts", "alert_scores"):
                client.command(f"ALTER TABLE bench.{table} RESET SETTING {', '.join({**MERGE_MEMORY, **MERGE_SELECTION})}")
        if side == STOPPED:
            for table in ("raw_alerts", "alert_scores"):
                client.command(f"SYSTEM STOP MERGES bench.{table}")
        rnd = random.Random(5)
        text = ["".join(rnd.choices(string.ascii_letters + string.digits, k=700)) for _ in range(64)]
        peak, stop = [0.0], threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], status_mb("RssAnon"))
                time.sleep(0.02)

        start_anon, watcher = status_mb("RssAnon"), threading.Thread(target=watch, daemon=True)
        watcher.start()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        inserts, tracked, largest, most_parts, merge_threads = [], [0], [0], 0, _merge_cpu()
        for i in range(alerts // batch):
            raw, scores = _micro_batch(i, batch, rnd, text)
            began = time.perf_counter()
            client.insert_arrow("bench.raw_alerts", raw)
            client.insert_arrow("bench.alert_scores", scores)
            inserts.append(time.perf_counter() - began)
            if i % 2 == 0:
                row = client.query(
                    "SELECT (SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'), "
                    "(SELECT max(memory_usage) FROM system.merges), (SELECT count() FROM system.parts "
                    "WHERE database = 'bench' AND active AND table IN ('raw_alerts', 'alert_scores'))"
                ).result_rows[0]
                tracked.append(row[0] or 0)
                largest.append(row[1] or 0)
                most_parts = max(most_parts, row[2])
            time.sleep(0.02)
        used = resource.getrusage(resource.RUSAGE_SELF)
        merge_threads = _merge_cpu() - merge_threads
        stop.set()
        watcher.join()
        parts = client.query("SELECT count() FROM system.parts WHERE database = 'bench' AND active "
                             "AND table IN ('raw_alerts', 'alert_scores')").result_rows[0][0]
        client.command("SYSTEM STOP MERGES")
    inserts.sort()
    return {"largest_merge_mb": max(largest) / 2**20, "engine_tracked_max_mb": max(tracked) / 2**20,
            "anon_start_mb": start_anon, "anon_peak_mb": peak[0], "anon_end_mb": status_mb("RssAnon"),
            "cpu_s": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "user_ms_per_batch": (used.ru_utime - cpu.ru_utime) * 1e3 / (alerts // batch),
            "kernel_ms_per_batch": (used.ru_stime - cpu.ru_stime) * 1e3 / (alerts // batch),
            "merge_cpu_s": merge_threads,
            "insert_p50_ms": inserts[len(inserts) // 2] * 1e3,
            "insert_p99_ms": inserts[int(len(inserts) * 0.99)] * 1e3, "active_parts": parts,
            "active_parts_max": most_parts}


def _merge_cpu() -> float:
    """CPU seconds of this process's merge threads so far (the engine names them MergeMutate)."""
    total = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        if "MergeMutate" in stat[stat.index("(") + 1:stat.rindex(")")]:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run(alerts: int) -> dict[str, float]:
    """Keys ``{side}.*`` for the backlog's micro-batches, ``steady.{side}.*`` for the small ones."""
    out: dict[str, float] = {"alerts": alerts, "steady.alerts": STEADY_ALERTS}
    for prefix, n, batch in (("", alerts, BATCH), ("steady.", STEADY_ALERTS, STEADY_BATCH)):
        for side in [*SIDES, STOPPED] if prefix else SIDES:
            done = subprocess.run([sys.executable, "-m", "tests.benchmarks.merge_bench", side, str(n), str(batch)],
                                  check=True, capture_output=True, text=True, timeout=1800,
                                  cwd=Path(__file__).resolve().parents[2])
            out.update({f"{prefix}{side}.{k}": v
                        for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()})
    return out


def report(r: dict) -> list[str]:
    lines = []
    for prefix, batch in (("", BATCH), ("steady.", STEADY_BATCH)):
        lines.append(f"merges of the stream's parts, {r[f'merges.{prefix}alerts']:,} alerts in micro-batches "
                     f"of {batch:,} (2 tables); {SIDES['release']} beside {SIDES['defaults']}, same run")
        lines += _table(r, prefix)
    lines.append(f"  the store's floor at the steady rate, merges stopped (no part replaced, none of its files deleted): kernel "
                 f"{r['merges.steady.stopped.kernel_ms_per_batch']:.1f} ms, user "
                 f"{r['merges.steady.stopped.user_ms_per_batch']:.1f} ms per micro-batch; "
                 f"{r['merges.steady.stopped.active_parts']:.0f} parts left unmerged")
    return lines


def _table(r: dict, prefix: str) -> list[str]:
    lines = []
    rows = [("largest merge, MB", "largest_merge_mb"), ("engine's tracked memory, max MB",
            "engine_tracked_max_mb"), ("process anon, peak MB", "anon_peak_mb"),
            ("process anon, after MB", "anon_end_mb"), ("CPU s (inserts and merges)", "cpu_s"),
            ("CPU s of the merge threads", "merge_cpu_s"),
            ("kernel ms per micro-batch", "kernel_ms_per_batch"),
            ("user ms per micro-batch", "user_ms_per_batch"),
            ("insert p50 ms", "insert_p50_ms"), ("insert p99 ms", "insert_p99_ms"),
            ("active parts, most at once", "active_parts_max"), ("active parts after", "active_parts")]
    for label, key in rows:
        release, default = r[f"merges.{prefix}release.{key}"], r[f"merges.{prefix}defaults.{key}"]
        ratio = f"  ({release / default:.2f}×)" if default else ""
        lines.append(f"  {label:34s} {release:10.1f} vs {default:10.1f}{ratio}")
    return lines


if __name__ == "__main__":
    print(json.dumps(_side(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
