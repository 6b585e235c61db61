"""Read and validate SOT batches from a directory or ``s3://`` (pyarrow filesystems).

A batch is read whole and checked (META checksums in md5 or sha256 form, required files,
columns and types, keys) before anything is written; every problem found is reported at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch.sot_layout import LABELS_DIR, META_FILE, SOT_FILES, batch_path, labels_path
from shared.clickhouse.connection import is_identifier
from shared.errors import AmlScoreError, BatchRejected, ConfigurationError
from shared.schemas import NETWORK_PATTERN

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NETWORK = re.compile(NETWORK_PATTERN)
_NON_EMPTY = {"alerts.parquet": ["alert_id", "address"], "features.parquet": ["address"],
              "clusters.parquet": ["cluster_id"], "money_flows.parquet": ["from_address", "to_address"]}

# kind per column: "string", "number", "integer", "strings" (list of str), "flag" (bool or int)
REQUIRED: dict[str, dict[str, str]] = {
    "alerts.parquet": {"alert_id": "string", "address": "string", "typology_type": "string",
                       "severity": "string", "volume_usd": "number"},
    "features.parquet": {"address": "string"},
    "clusters.parquet": {"cluster_id": "string", "related_alert_ids": "strings"},
    "money_flows.parquet": {"from_address": "string", "to_address": "string"},
}
OPTIONAL: dict[str, dict[str, str]] = {
    "alerts.parquet": {
        "pattern_id": "string", "pattern_type": "string", "suspected_address_type": "string",
        "suspected_address_subtype": "string", "alert_confidence_score": "number",
        "description": "string", "evidence_json": "string", "risk_indicators": "strings",
    },
    "features.parquet": {},
    "clusters.parquet": {
        "cluster_type": "string", "primary_address": "string", "primary_alert_id": "string",
        "addresses_involved": "strings", "total_alerts": "integer", "total_volume_usd": "number",
        "severity_max": "string", "confidence_avg": "number",
    },
    "money_flows.parquet": {
        "tx_count": "integer", "amount_usd_sum": "number", "first_seen_timestamp": "integer",
        "last_seen_timestamp": "integer", "reciprocity_ratio": "number", "is_bidirectional": "flag",
    },
}
LABEL_COLUMNS = {"address": "string", "risk_level": "string"}
LABEL_OPTIONAL = {"label": "string", "address_type": "string", "confidence_score": "number"}
RISK_LEVELS = {"low", "medium", "high", "critical"}
UNIQUE_KEYS = {"alerts.parquet": ["alert_id"], "features.parquet": ["address"],
               "clusters.parquet": ["cluster_id"]}


class SourceUnreadable(AmlScoreError):
    """The SOT source cannot be listed or read at all."""


@dataclass(frozen=True, order=True)
class BatchKey:
    network: str
    processing_date: dt.date
    window_days: int

    def __str__(self) -> str:
        return f"{self.network}/{self.processing_date.isoformat()}/{self.window_days}"


@dataclass(frozen=True)
class SotBatch:
    key: BatchKey
    tables: dict[str, pa.Table]  # validated, keyed by SOT file name
    meta_sha256: str
    counts: dict[str, int]


def open_source(source: str, s3_endpoint: str | None = None, anonymous: bool = False):
    """(filesystem, root path) for a local directory or an ``s3://bucket/prefix`` URI."""
    if source.startswith("s3://"):
        options: dict = {"anonymous": anonymous}
        if s3_endpoint:  # "http://host:port" or "host:port" (https)
            scheme, _, host = s3_endpoint.rpartition("://")
            options.update(endpoint_override=host, scheme=scheme or "https")
        try:
            fs = pafs.S3FileSystem(**options)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds here
            raise ConfigurationError(f"cannot open S3: {exc}") from exc
        return fs, source.removeprefix("s3://").rstrip("/")
    local = pafs.LocalFileSystem()
    info = local.get_file_info(source)
    if info.type != pafs.FileType.Directory:
        raise ConfigurationError(f"SOT source {source} is not a directory")
    return local, str(source).rstrip("/")


def find_batches(fs: pafs.FileSystem, root: str) -> tuple[list[BatchKey], dict[str, str]]:
    """Every ``{network}/{YYYY-MM-DD}/{window}`` directory under ``root``, and the folders that
    sit where the layout expects one of those but are not (``{path: why}``). Folders starting
    with ``.`` or ``_`` are left alone."""
    keys: list[BatchKey] = []
    strays: dict[str, str] = {}
    for network in _children(fs, root):
        if network == LABELS_DIR or network.startswith((".", "_")):
            continue
        if not _NETWORK.match(network):
            strays[network] = f"network folder name must match {NETWORK_PATTERN}"
            continue
        for day in _children(fs, f"{root}/{network}"):
            if day.startswith((".", "_")):
                continue
            date = _parse_date(day)
            if date is None:
                strays[f"{network}/{day}"] = "not a YYYY-MM-DD date folder"
                continue
            for window in _children(fs, f"{root}/{network}/{day}"):
                if window.startswith((".", "_")):
                    continue
                if not window.isdigit() or not 1 <= int(window) <= 3650:
                    strays[f"{network}/{day}/{window}"] = "not a window folder (days, 1..3650)"
                    continue
                keys.append(BatchKey(network, date, int(window)))
    return sorted(keys), strays


def _parse_date(text: str) -> dt.date | None:
    if not _DATE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def discover_batches(fs: pafs.FileSystem, root: str) -> list[BatchKey]:
    return find_batches(fs, root)[0]


def _children(fs: pafs.FileSystem, path: str) -> list[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as exc:  # S3: no such bucket, no network, no credentials
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SourceUnreadable(f"cannot list the SOT source at {path}: {detail}") from exc
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def _read_bytes(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def _expected_digests(meta: dict) -> dict[str, tuple[str, str]]:
    """{file: (algorithm, hex)} from either META form."""
    out: dict[str, tuple[str, str]] = {}
    for name, digest in (meta.get("sha256") or {}).items():
        out[name] = ("sha256", str(digest).lower())
    for name, entry in (meta.get("files") or {}).items():
        if isinstance(entry, dict):
            for algorithm in ("sha256", "md5"):
                if entry.get(algorithm):
                    out.setdefault(name, (algorithm, str(entry[algorithm]).lower()))
    return out


def _meta_counts(meta: dict) -> dict[str, int]:
    counts = {}
    for name, value in (meta.get("counts") or {}).items():
        if isinstance(value, int):
            counts[name.removesuffix(".parquet")] = value
    for name, entry in (meta.get("files") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("rows"), int):
            counts.setdefault(name.removesuffix(".parquet"), entry["rows"])
    return counts


def _meta_problems(meta: dict, key: BatchKey) -> list[str]:
    """META's own idea of the batch must be the folder's (when META states it)."""
    stated = {"network": meta.get("network"),
              "processing_date": meta.get("processing_date", meta.get("date")),
              "window_days": meta.get("window_days", meta.get("window"))}
    actual = {"network": key.network, "processing_date": key.processing_date.isoformat(),
              "window_days": key.window_days}
    return [f"{META_FILE} says {name} {value!r} but the folder is {actual[name]!r}"
            for name, value in stated.items()
            if value is not None and str(value) != str(actual[name])]


def _kind_ok(kind: str, dtype: pa.DataType) -> bool:
    if pa.types.is_null(dtype):
        return True  # an all-null column (e.g. written by pandas from an empty frame)
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if kind == "string":
        return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype)
    if kind == "number":
        return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype) or pa.types.is_null(dtype)
    if kind == "integer":
        return pa.types.is_integer(dtype) or pa.types.is_null(dtype)
    if kind == "flag":
        return pa.types.is_boolean(dtype) or pa.types.is_integer(dtype)
    if kind == "strings":
        return (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)) and _kind_ok("string", dtype.value_type)
    raise ValueError(kind)


def check_columns(name: str, table: pa.Table, required: dict, optional: dict) -> list[str]:
    problems = []
    schema = table.schema
    for column in required:
        if column not in schema.names:
            problems.append(f"{name}: required column {column!r} is missing")
    for column, kind in {**required, **optional}.items():
        if column in schema.names and not _all_null(table, column) \
                and not _kind_ok(kind, schema.field(column).type):
            problems.append(f"{name}: column {column!r} has type {schema.field(column).type}, expected {kind}")
    return problems


def _all_null(table: pa.Table, column: str) -> bool:
    """An all-null column (0 rows included) carries no value of the wrong type, whatever its type."""
    return table.column(column).null_count == table.num_rows


def _value_problems(name: str, table: pa.Table) -> list[str]:
    """The stream's rules for values: keys present and non-empty, numbers finite."""
    problems = []
    for column in _NON_EMPTY.get(name, []):
        if column in table.column_names and table.num_rows:
            values = table.column(column)
            if values.null_count == table.num_rows:
                empty = table.num_rows
            else:
                if pa.types.is_dictionary(values.type):
                    values = values.cast(values.type.value_type)
                lengths = pc.utf8_length(values.fill_null("x"))
                empty = values.null_count + (pc.sum(pc.equal(lengths, 0)).as_py() or 0)
            if empty:
                problems.append(f"{name}: {empty} rows have no {column} (null or empty)")
    required_numbers = [c for c, kind in REQUIRED.get(name, {}).items() if kind == "number"]
    for field_ in table.schema:
        if not table.num_rows:
            break
        column = table.column(field_.name)
        if field_.name in required_numbers:
            missing = column.null_count + (pc.sum(pc.is_nan(column.fill_null(0.0))).as_py() or 0
                                           if pa.types.is_floating(field_.type) else 0)
            if missing:
                problems.append(f"{name}: {missing} rows have no {field_.name} (null or NaN)")
        if pa.types.is_floating(field_.type):
            # NaN elsewhere is "missing" (pandas writes missing floats so); infinity is no value.
            infinite = pc.sum(pc.is_inf(column.fill_null(0.0))).as_py() or 0
            if infinite:
                problems.append(f"{name}: column {field_.name!r} has {infinite} infinite values")
    return problems


def _check_keys(name: str, table: pa.Table, key: BatchKey) -> list[str]:
    problems = []
    if "processing_date" in table.column_names and not _all_null(table, "processing_date"):
        column = table.column("processing_date")
        try:
            dates = pc.unique(column.cast(pa.date32()) if not pa.types.is_string(column.type)
                              else pc.strptime(column, "%Y-%m-%d", "s").cast(pa.date32()))
            found = {d.as_py() for d in dates if d.is_valid}
            if found - {key.processing_date}:
                problems.append(f"{name}: processing_date {sorted(map(str, found))} does not match the batch date {key.processing_date}")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problems.append(f"{name}: processing_date is not a date ({exc})")
    if "window_days" in table.column_names and not _all_null(table, "window_days"):
        column = table.column("window_days")
        if not pa.types.is_integer(column.type):
            problems.append(f"{name}: column 'window_days' has type {column.type}, expected integer")
        else:
            found = {v.as_py() for v in pc.unique(column) if v.is_valid}
            if found - {key.window_days}:
                problems.append(f"{name}: window_days {sorted(found)} does not match the batch window {key.window_days}")
    for column in UNIQUE_KEYS.get(name, []):
        if column in table.column_names and table.num_rows:
            values = table.column(column)
            if values.null_count:
                problems.append(f"{name}: {values.null_count} rows have no {column}")
            elif pc.count_distinct(values).as_py() != table.num_rows:
                problems.append(f"{name}: {column} is not unique")
    return problems


def _check_feature_names(table: pa.Table) -> list[str]:
    return [f"features.parquet: column name {c!r} is not a plain identifier" for c in table.column_names
            if not is_identifier(c)]


def read_batch(fs: pafs.FileSystem, root: str, key: BatchKey) -> SotBatch:
    """Read and validate one batch; raise :class:`BatchRejected` listing every problem."""
    directory = batch_path(root, key.network, key.processing_date, key.window_days)
    meta_bytes = _read_bytes(fs, f"{directory}/{META_FILE}")
    if meta_bytes is None:
        raise BatchRejected(str(key), [f"{META_FILE} is missing"])
    try:
        meta = orjson.loads(meta_bytes)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise BatchRejected(str(key), [f"{META_FILE} is not valid JSON: {exc}"]) from exc
    digests = _expected_digests(meta)
    problems: list[str] = _meta_problems(meta, key)
    for name in sorted(set(digests) - set(SOT_FILES)):  # extra files META vouches for
        data = _read_bytes(fs, f"{directory}/{name}")
        if data is None:
            problems.append(f"{META_FILE} lists a checksum for {name}, which is not there")
        elif hashlib.new(digests[name][0], data).hexdigest() != digests[name][1]:
            problems.append(f"{name}: {digests[name][0]} checksum mismatch")
    tables: dict[str, pa.Table] = {}
    for name in SOT_FILES:
        data = _read_bytes(fs, f"{directory}/{name}")
        if data is None:
            problems.append(f"{name} is missing")
            continue
        if name not in digests:
            problems.append(f"{META_FILE} has no checksum for {name}")
            continue
        algorithm, expected = digests[name]
        actual = hashlib.new(algorithm, data).hexdigest()
        if actual != expected:
            problems.append(f"{name}: {algorithm} checksum mismatch (META {expected[:12]}…, file {actual[:12]}…)")
            continue
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as exc:
            problems.append(f"{name} is not readable Parquet: {exc}")
            continue
        column_problems = check_columns(name, table, REQUIRED[name], OPTIONAL[name])
        if name == "features.parquet":
            column_problems += _check_feature_names(table)
        column_problems += [] if column_problems else _check_keys(name, table, key) + _value_problems(name, table)
        problems += column_problems
        tables[name] = table
    counts = _meta_counts(meta)
    for name, table in tables.items():
        expected_rows = counts.get(name.removesuffix(".parquet"))
        if expected_rows is not None and expected_rows != table.num_rows:
            problems.append(f"{name}: META says {expected_rows} rows, file has {table.num_rows}")
    if problems:
        raise BatchRejected(str(key), problems)
    return SotBatch(key, tables, hashlib.sha256(meta_bytes).hexdigest(),
                    {name.removesuffix(".parquet"): t.num_rows for name, t in tables.items()})


def read_labels(fs: pafs.FileSystem, root: str, network: str) -> pa.Table | None:
    """The network's address labels, validated; None if the source has no label file."""
    path = labels_path(root, network)
    data = _read_bytes(fs, path)
    if data is None:
        return None
    where = f"address-labels/{network}"
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchRejected(where, [f"not readable Parquet: {exc}"]) from exc
    problems = check_columns("labels", table, LABEL_COLUMNS, LABEL_OPTIONAL)
    if not problems:
        levels = {v.as_py() for v in pc.unique(table.column("risk_level")) if v.is_valid}
        if levels - RISK_LEVELS:
            problems.append(f"labels: unknown risk_level values {sorted(levels - RISK_LEVELS)}")
    if problems:
        raise BatchRejected(where, problems)
    return table
