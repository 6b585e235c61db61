"""Build broken SOT batches for tests: each helper leaves exactly one defect."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq


def clone(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def batch_dirs(root: Path, network: str = "ethereum") -> list[Path]:
    return sorted(p / "7" for p in (root / network).iterdir())


def read(batch: Path, name: str) -> pa.Table:
    return pq.read_table(batch / name)


def rewrite(batch: Path, name: str, table: pa.Table, fix_meta: bool = True) -> None:
    """Replace a file; with fix_meta its checksum and count in META.json are updated too."""
    pq.write_table(table, batch / name)
    if fix_meta:
        meta = orjson.loads((batch / "META.json").read_bytes())
        meta["sha256"][name] = hashlib.sha256((batch / name).read_bytes()).hexdigest()
        meta["counts"][name.removesuffix(".parquet")] = table.num_rows
        (batch / "META.json").write_bytes(orjson.dumps(meta))


def to_md5_meta(batch: Path) -> None:
    """Rewrite META.json in the other upstream form: {"files": {name: {"md5": …}}}."""
    meta = orjson.loads((batch / "META.json").read_bytes())
    files = {name: {"md5": hashlib.md5((batch / name).read_bytes()).hexdigest()}  # noqa: S324
             for name in meta["sha256"]}
    (batch / "META.json").write_bytes(orjson.dumps({"files": files}))
