"""`amlscore dispositions import`: a file of past decisions (Parquet or CSV, one decision a
row, the DispositionEvent fields as columns) validated whole before any row is written: one bad
row refuses the file, naming the row and why. A file with no rows is valid and stores nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import ValidationError

from shared.clickhouse.disposition_store import DispositionStore
from shared.errors import AmlScoreError
from shared.schemas import DispositionEvent

REQUIRED = ("alert_id", "network", "processing_date", "window_days", "disposition", "analyst",
            "decided_at")
OPTIONAL = ("note", "sar_filed")
SHOWN_PROBLEMS = 5


def read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".csv":
            # Every column as text: the contract's validation parses it, as it parses events.
            with path.open(newline="", encoding="utf-8") as f:
                names = next(csv.reader(f), [])
            if not names:
                raise AmlScoreError(f"{path}: no header row (needs {', '.join(REQUIRED)})")
            return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True))
    except (OSError, UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise AmlScoreError(f"{path}: cannot be read: {exc}") from exc
    raise AmlScoreError(f"{path}: give a .parquet or .csv file")


def validated(table: pa.Table, source: str) -> list[DispositionEvent]:
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise AmlScoreError(f"{source}: missing columns {', '.join(missing)} (needs "
                            f"{', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
    columns = [c for c in (*REQUIRED, *OPTIONAL) if c in table.column_names]
    events, problems = [], []
    for number, row in enumerate(table.select(columns).to_pylist(), 1):
        try:
            events.append(DispositionEvent.model_validate({k: v for k, v in row.items() if v is not None}))
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            problems.append(f"row {number}: {why}")
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = f"\n  … and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise AmlScoreError(f"{source}: {len(problems)} of {table.num_rows} rows are not valid "
                            f"decisions; nothing was imported:\n  {shown}{more}")
    return events


def import_decisions(store: DispositionStore, path: Path, chunk: int = 50_000) -> int:
    """Stores every decision of the file, or none; returns how many. Importing a file again
    stores nothing new (the same decisions replace themselves)."""
    events = validated(read_table(path), str(path))
    for i in range(0, len(events), chunk):
        store.write(events[i:i + chunk], "import")
    return len(events)
