"""The one feature builder every path uses (training, backfill, stream).

Invariants:
- an alert's features depend only on that alert's row and its address's feature row — never on the
  other alerts of the batch, never on the label table;
- the feature list is taken from the data at training time and stored with the model, in order;
  at scoring time absent features are NaN and unknown extra columns are ignored;
- categoricals are one-hot over a vocabulary fixed at training (sorted, so the order is stable);
  an unseen category is all zeros, a missing one is NaN;
- a feature's name is declared by the block that computes its column (:class:`Block`): the
  matrix and its names are made from the same list, so no reordering can mislabel a column.

Alerts come as *columns*: anything where ``alerts[name]`` gives a column and ``name in alerts``
says whether it is there — a pandas DataFrame (training, backfill) or a dict of lists or arrays
(the stream, which builds no DataFrame). Address features come either as a frame keyed by
(network, processing_date, window_days, address), joined here, or as :class:`AddressRows`
already aligned with the alerts (the stream looks each alert's row up itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.columns import (
    as_floats,
    day_numbers,
    distinct,
    is_frame,
    joint_codes,
    list_items,
    one_hot,
    positions,
    ranks,
    vocabulary,
)
from shared.pandas_gate import load_pandas

if TYPE_CHECKING:
    import pandas as pd

KEY_COLUMNS = ("network", "processing_date", "window_days", "address")
ALERT_NUMERIC = ("alert_confidence_score", "volume_usd")
ALERT_CATEGORICAL = (
    "typology_type",
    "pattern_type",
    "severity",
    "suspected_address_type",
    "suspected_address_subtype",
)
# What the feature builder reads from an alert row (descriptions and evidence are for people).
ALERT_SCORING_COLUMNS = (*KEY_COLUMNS, "alert_id", *ALERT_NUMERIC, *ALERT_CATEGORICAL, "risk_indicators")
SEVERITY_RANK = {"low": 0.0, "medium": 1.0, "high": 2.0, "critical": 3.0}
# Columns that must never become features, whichever table they turn up in: they are the label,
# or derived from it (upstream leaked label_confidence), or bookkeeping.
FORBIDDEN_FEATURES = frozenset(
    {
        "label", "label_confidence", "risk_level", "confidence_score", "address_type",
        "is_illicit", "p_illicit", "alert_id", "_version", "_ingested_at",
    }
)
PARALLEL_MIN_ROWS = 50_000  # rows per part below which one thread builds the matrix alone
# Absolute times are neither stationary (a temporal split puts every held-out value outside the
# training range) nor harmless (a per-address constant identifies the address, so trees memorise
# labelled addresses). Columns named *_timestamp enter as age in days at the processing date.
TIMESTAMP_SUFFIX = "_timestamp"
SECONDS_PER_DAY = 86400.0

AlertColumns = Mapping[str, Any]  # a DataFrame, or {column name: list or array}


def address_feature_name(column: str) -> str:
    if column.endswith(TIMESTAMP_SUFFIX):
        return column.removesuffix(TIMESTAMP_SUFFIX) + "_age_days"
    return column


# -- the spec and its blocks ---------------------------------------------------------------------

@dataclass(frozen=True)
class AddressRows:
    """Each alert's address-feature row, aligned with the alerts (row i is alert i's address),
    as it came: float64, ``*_timestamp`` columns still absolute. ``columns`` names the matrix's
    columns; NaN where an address has no row or no value."""

    columns: tuple[str, ...]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.matrix)


BlockCompute = Callable[[AlertColumns, "AddressRows", int, dict], np.ndarray]


@dataclass(frozen=True)
class Block:
    """Consecutive matrix columns: their names, and how to compute them from the alerts
    (``n`` rows), their aligned address rows and a memo the blocks of one matrix share."""

    names: tuple[str, ...]
    compute: BlockCompute


def _numbers(alerts: AlertColumns, _rows: AddressRows, n: int, _memo: dict) -> np.ndarray:
    out = np.full((n, len(ALERT_NUMERIC) + 1), np.nan, dtype=np.float32)
    for j, column in enumerate(ALERT_NUMERIC):
        if column in alerts:
            out[:, j] = as_floats(alerts[column])
    if "severity" in alerts:
        out[:, -1] = ranks(alerts["severity"], SEVERITY_RANK)
    return out


def _lists(alerts: AlertColumns, n: int, memo: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """risk_indicators as (is a list, its length, all tokens in row order); worked out once per
    matrix (``memo``), though two blocks read it."""
    if "lists" not in memo:
        memo["lists"] = list_items(alerts["risk_indicators"])
    return memo["lists"]


def _indicator_count(alerts: AlertColumns, _rows: AddressRows, n: int, memo: dict) -> np.ndarray:
    count = np.full((n, 1), np.nan, dtype=np.float32)
    if "risk_indicators" in alerts:
        listed, lengths, _ = _lists(alerts, n, memo)
        count[listed, 0] = lengths[listed]
    return count


def _categorical(column: str, values: tuple[str, ...]) -> BlockCompute:
    def compute(alerts: AlertColumns, _rows: AddressRows, n: int, _memo: dict) -> np.ndarray:
        if column not in alerts:
            return np.full((n, len(values)), np.nan, dtype=np.float32)
        return one_hot(alerts[column], values)
    return compute


def _indicators(values: tuple[str, ...]) -> BlockCompute:
    position = {name: j for j, name in enumerate(values)}

    def compute(alerts: AlertColumns, _rows: AddressRows, n: int, memo: dict) -> np.ndarray:
        hot = np.full((n, len(values)), np.nan, dtype=np.float32)
        if "risk_indicators" not in alerts:
            return hot
        listed, lengths, tokens = _lists(alerts, n, memo)
        hot[listed] = 0.0
        if len(tokens) and values:
            codes, uniques = distinct(tokens)
            at = positions(codes, uniques, position)
            row = np.repeat(np.arange(n), lengths)
            hit = at >= 0
            hot[row[hit], at[hit]] = 1.0
        return hot
    return compute


def _address(columns: tuple[str, ...]) -> BlockCompute:
    stamped = [k for k, name in enumerate(columns) if name.endswith(TIMESTAMP_SUFFIX)]

    def compute(alerts: AlertColumns, rows: AddressRows, n: int, _memo: dict) -> np.ndarray:
        position = {name: j for j, name in enumerate(rows.columns)}
        values = np.full((n, len(columns)), np.nan, dtype=np.float64)
        present = [(k, position[name]) for k, name in enumerate(columns) if name in position]
        if present and len(rows):
            values[:, [k for k, _ in present]] = rows.matrix[:, [j for _, j in present]]
        if stamped:
            if "processing_date" in alerts:
                as_of = day_numbers(alerts["processing_date"]).astype("datetime64[s]").astype(np.float64)
                for k in stamped:
                    seconds = values[:, k]
                    seconds = np.where(seconds > 1e11, seconds / 1000.0, seconds)  # ms → s
                    values[:, k] = (as_of - seconds) / SECONDS_PER_DAY
            else:
                values[:, stamped] = np.nan
        return values.astype(np.float32)
    return compute


@dataclass(frozen=True)
class FeatureSpec:
    """What the alert models were trained on; serialised into the model metadata."""

    categories: Mapping[str, tuple[str, ...]]
    risk_indicators: tuple[str, ...]
    address_features: tuple[str, ...]
    blocks: tuple[Block, ...] = field(init=False, repr=False, compare=False)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        blocks = tuple(spec_blocks(self))
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "names", tuple(name for block in blocks for name in block.names))

    def to_dict(self) -> dict:
        return {
            "categories": {k: list(v) for k, v in self.categories.items()},
            "risk_indicators": list(self.risk_indicators),
            "address_features": list(self.address_features),
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSpec:
        spec = cls(
            categories={k: tuple(v) for k, v in data["categories"].items()},
            risk_indicators=tuple(data["risk_indicators"]),
            address_features=tuple(data["address_features"]),
        )
        if "names" in data and tuple(data["names"]) != spec.names:
            raise ValueError("feature spec names do not match its vocabulary")
        return spec


def spec_blocks(spec: FeatureSpec) -> list[Block]:
    """The matrix's blocks in order: each declares its columns' names beside how to compute them."""
    blocks = [Block((*ALERT_NUMERIC, "severity_rank"), _numbers),
              Block(("risk_indicator_count",), _indicator_count)]
    for column in ALERT_CATEGORICAL:
        values = tuple(spec.categories.get(column, ()))
        blocks.append(Block(tuple(f"{column}={value}" for value in values), _categorical(column, values)))
    blocks.append(Block(tuple(f"risk_indicator={value}" for value in spec.risk_indicators),
                        _indicators(tuple(spec.risk_indicators))))
    taken = {name for block in blocks for name in block.names}
    address_names = []
    for column in spec.address_features:
        name = address_feature_name(column)
        address_names.append(f"address.{name}" if name in taken else name)
    blocks.append(Block(tuple(address_names), _address(tuple(spec.address_features))))
    return blocks


def numeric_feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric (or boolean) columns of a features table, keys and forbidden names excluded."""
    pd = load_pandas()

    columns = []
    for name in frame.columns:
        if name in KEY_COLUMNS or name in FORBIDDEN_FEATURES or name.startswith("_"):
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            columns.append(name)
    return columns


def fit_feature_spec(alerts: pd.DataFrame, address_features: pd.DataFrame | None,
                     alert_rows: np.ndarray | None = None,
                     feature_rows: np.ndarray | None = None) -> FeatureSpec:
    """Fix the vocabulary and address-feature list from training data: the rows of each frame
    that ``alert_rows`` / ``feature_rows`` (boolean masks) keep, or all of them. Only the columns
    read here are copied out (on 1M alerts the text key columns are most of a whole-row copy)."""
    if alert_rows is not None:
        alerts = alerts.loc[alert_rows, [c for c in (*ALERT_CATEGORICAL, "risk_indicators") if c in alerts]]
    if address_features is not None and feature_rows is not None:
        address_features = address_features.loc[feature_rows, numeric_feature_columns(address_features)]
    categories = {
        column: vocabulary(alerts[column]) if column in alerts else ()
        for column in ALERT_CATEGORICAL
    }
    indicators: tuple[str, ...] = ()
    if "risk_indicators" in alerts:
        indicators = vocabulary(_lists(alerts, len(alerts), {})[2])
    address_columns: list[str] = []
    if address_features is not None and len(address_features):
        for name in sorted(numeric_feature_columns(address_features)):
            if address_features[name].notna().any():  # all-NaN in training: nothing to learn
                address_columns.append(name)
    return FeatureSpec(categories, indicators, tuple(address_columns))


# -- joining a keyed features frame ----------------------------------------------------------------

def _key_codes(left: Any, right: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes of one key column on both sides, equal where the keys are: dates by their day,
    whatever their type; other keys by :func:`joint_codes`."""
    if name == "processing_date":
        return (day_numbers(left).astype(np.int64), day_numbers(right).astype(np.int64))
    left_codes, right_codes, _ = joint_codes(left, right)
    return left_codes, right_codes


def _row_keys(alerts: AlertColumns, features: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per row, equal on both sides exactly where every key column is."""
    pd = load_pandas()  # a keyed features frame is the batch's (the stream brings AddressRows)

    n, m = row_count(alerts), len(features)
    left, right = np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    for key in keys:
        lc, rc = _key_codes(alerts[key], features[key], key)
        base = int(max(lc.max(initial=0), rc.max(initial=0))) + 1
        # re-coded after each column, so the combined codes never outgrow int64
        combined, _ = pd.factorize(np.concatenate([left * base + lc, right * base + rc]))
        left, right = combined[:n], combined[n:]
    return left, right


def align_address_rows(alerts: AlertColumns, features: pd.DataFrame | None,
                       columns: Sequence[str], n: int) -> AddressRows:
    """Each alert's row of a keyed features frame, matched on the key columns both have; when
    the frame holds one key twice, its last row wins."""
    pd = load_pandas()

    columns = tuple(columns)
    matrix = np.full((n, len(columns)), np.nan, dtype=np.float64)
    if features is None or not len(features) or not columns or not n:
        return AddressRows(columns, matrix)
    keys = [c for c in KEY_COLUMNS if c in alerts and c in features]
    left, right = _row_keys(alerts, features, keys)
    last = np.flatnonzero(~pd.Index(right).duplicated(keep="last"))
    rows = pd.Index(right[last]).get_indexer(left)
    found = rows >= 0
    present = [(k, name) for k, name in enumerate(columns) if name in features]
    if present and found.any():
        # Only the wanted columns, as floats, are indexed by row: taking whole rows would
        # copy the frame's text key columns too (most of the cost on a large frame).
        at = last[rows[found]]
        block = np.column_stack([as_floats(features[name])[at] for _, name in present])
        matrix[np.ix_(np.flatnonzero(found), [k for k, _ in present])] = block
    return AddressRows(columns, matrix)


def row_count(alerts: AlertColumns) -> int:
    if is_frame(alerts):
        return len(alerts)
    return len(next(iter(alerts.values()))) if len(alerts) else 0


def build_alert_matrix(spec: FeatureSpec, alerts: AlertColumns,
                       address_features: pd.DataFrame | AddressRows | None,
                       threads: int = 1) -> np.ndarray:
    """Alerts (+ their address rows) → float32 matrix whose columns are ``spec.names``.
    ``threads`` > 1 builds a large frame's matrix in that many parts side by side."""
    n = row_count(alerts)
    if (threads > 1 and n >= threads * PARALLEL_MIN_ROWS and is_frame(alerts)
            and not isinstance(address_features, AddressRows)):
        return _in_parts(spec, alerts, address_features, threads)
    if isinstance(address_features, AddressRows):
        rows = address_features
    else:
        rows = align_address_rows(alerts, address_features, spec.address_features, n)
    matrix = np.empty((n, len(spec.names)), dtype=np.float32)
    memo: dict = {}
    start = 0
    for block in spec.blocks:
        part = block.compute(alerts, rows, n, memo)
        assert part.shape == (n, len(block.names)), (block.names[:3], part.shape)
        matrix[:, start:start + part.shape[1]] = part
        start += part.shape[1]
    # Infinite values carry no meaning a tree can use reliably; they are treated as missing.
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix


def _in_parts(spec: FeatureSpec, alerts: pd.DataFrame, address_features: pd.DataFrame | None,
              threads: int) -> np.ndarray:
    """A row's values depend only on that row and its address's features, so the matrix built
    in parts equals the one built whole; much of the work (pandas' hashing, numpy) runs without
    Python's lock, so the parts use more than one core (1M training alerts: 5.2 s → 3.0 s)."""
    bounds = np.linspace(0, len(alerts), threads + 1).astype(np.int64)
    out = np.empty((len(alerts), len(spec.names)), dtype=np.float32)

    def build(i: int) -> None:
        start, stop = bounds[i], bounds[i + 1]
        out[start:stop] = build_alert_matrix(spec, alerts.iloc[start:stop], address_features)

    with ThreadPoolExecutor(threads, thread_name_prefix="alert-matrix") as pool:
        list(pool.map(build, range(threads)))
    return out
