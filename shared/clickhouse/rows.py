"""Arrow rows shaped for the raw tables: one conversion used by ingest and by the stream."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pyarrow.compute as pc

ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.string(), "LowCardinality(String)": pa.string(), "Float64": pa.float64(),
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int64": pa.int64(), "Date": pa.date32(), "Array(String)": pa.list_(pa.string()),
}


def arrow_column(source: pa.Table, name: str, target: pa.DataType, n: int) -> pa.Array:
    """``source[name]`` cast to ``target`` with nulls filled ('' / NaN / 0 / []); a default
    column when the source lacks it."""
    if name not in source.column_names:
        if pa.types.is_list(target):
            return pa.array([[]] * n, target)
        default = "" if pa.types.is_string(target) else (float("nan") if pa.types.is_floating(target) else 0)
        return pa.array([default] * n, target)
    column = source.column(name).combine_chunks()
    if column.null_count == len(column):  # all null, of whatever type: nothing to convert
        column = pa.nulls(n, target)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    column = column.cast(target, safe=False)
    if column.null_count:
        if pa.types.is_list(target):
            column = pc.if_else(pc.is_null(column), pa.scalar([], target), column)
        elif pa.types.is_string(target):
            column = column.fill_null("")
        elif pa.types.is_floating(target):
            column = column.fill_null(float("nan"))
        else:
            column = column.fill_null(0)
    return column


def conform(source: pa.Table, spec: dict[str, str]) -> dict[str, pa.Array]:
    n = source.num_rows
    return {name: arrow_column(source, name, ARROW_TYPES[ctype], n) for name, ctype in spec.items()}


def row_version() -> int:
    """A fresh ``_version`` for rows written now: microseconds, so a later write wins."""
    return time.time_ns() // 1000


def stamp(columns: dict[str, pa.Array], n: int, version: int) -> pa.Table:
    """Add the ingest bookkeeping columns (version decides which copy ReplacingMergeTree keeps)."""
    columns["_version"] = pa.array([version] * n, pa.uint64())
    columns["_ingested_at"] = pa.array([dt.datetime.now(dt.UTC)] * n, pa.timestamp("ms", tz="UTC"))
    return pa.table(columns)
