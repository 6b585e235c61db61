"""The one feature builder every path uses (training, backfill, stream).

Invariants:
- an alert's features depend only on that alert's row and its address's feature row — never on the
  other alerts of the batch, never on the label table;
- the feature list is taken from the data at training time and stored with the model, in order;
  at scoring time absent features are NaN and unknown extra columns are ignored;
- categoricals are one-hot over a vocabulary fixed at training (sorted, so the order is stable);
  an unseen category is all zeros, a missing one is NaN.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
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
MAX_CATEGORIES = 64
# Absolute times are neither stationary (a temporal split puts every held-out value outside the
# training range) nor harmless (a per-address constant identifies the address, so trees memorise
# labelled addresses). Columns named *_timestamp enter as age in days at the processing date.
TIMESTAMP_SUFFIX = "_timestamp"


def address_feature_name(column: str) -> str:
    if column.endswith(TIMESTAMP_SUFFIX):
        return column.removesuffix(TIMESTAMP_SUFFIX) + "_age_days"
    return column


@dataclass(frozen=True)
class FeatureSpec:
    """What the alert models were trained on; serialised into the model metadata."""

    categories: Mapping[str, tuple[str, ...]]
    risk_indicators: tuple[str, ...]
    address_features: tuple[str, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [*ALERT_NUMERIC, "severity_rank", "risk_indicator_count"]
        for column in ALERT_CATEGORICAL:
            names += [f"{column}={value}" for value in self.categories.get(column, ())]
        names += [f"risk_indicator={value}" for value in self.risk_indicators]
        taken = set(names)
        for column in self.address_features:
            name = address_feature_name(column)
            names.append(f"address.{name}" if name in taken else name)
        object.__setattr__(self, "names", tuple(names))

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


def _vocabulary(values: pd.Series) -> tuple[str, ...]:
    counts = values[values.notna() & (values != "")].astype(str).value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES]
    return tuple(sorted(name for name, _ in ordered))


def numeric_feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric (or boolean) columns of a features table, keys and forbidden names excluded."""
    columns = []
    for name in frame.columns:
        if name in KEY_COLUMNS or name in FORBIDDEN_FEATURES or name.startswith("_"):
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            columns.append(name)
    return columns


def fit_feature_spec(alerts: pd.DataFrame, address_features: pd.DataFrame | None) -> FeatureSpec:
    """Fix the vocabulary and address-feature list from training data."""
    categories = {
        column: _vocabulary(alerts[column]) if column in alerts else ()
        for column in ALERT_CATEGORICAL
    }
    indicators: tuple[str, ...] = ()
    if "risk_indicators" in alerts:
        indicators = _vocabulary(alerts["risk_indicators"].explode())
    address_columns: list[str] = []
    if address_features is not None and len(address_features):
        for name in sorted(numeric_feature_columns(address_features)):
            if address_features[name].notna().any():  # all-NaN in training: nothing to learn
                address_columns.append(name)
    return FeatureSpec(categories, indicators, tuple(address_columns))


def iso_dates(values: pd.Series) -> np.ndarray:
    """Dates (date objects, datetimes or ISO strings) as 'YYYY-MM-DD' strings, vectorised.
    A batch holds few distinct dates: each is parsed once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    as_days = pd.to_datetime(pd.Series(uniques)).to_numpy("datetime64[ns]").astype("datetime64[D]")
    return as_days.astype(str)[codes]


def normalise_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Key columns in one dtype each, so frames from Parquet, ClickHouse and JSON join alike."""
    out = frame.copy()
    if "processing_date" in out:
        out["processing_date"] = iso_dates(out["processing_date"])
    if "window_days" in out:
        out["window_days"] = out["window_days"].astype("int64")
    for column in ("network", "address"):
        if column in out:
            out[column] = out[column].astype(str)
    return out


def _as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@functools.lru_cache(maxsize=256)
def _index(vocabulary: tuple[str, ...]) -> pd.Index:
    return pd.Index(vocabulary)


def _one_hot(values: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    out = np.zeros((len(values), len(vocabulary)), dtype=np.float32)
    if not vocabulary:
        return out
    array = values.to_numpy(dtype=object, na_value=None)
    codes = _index(vocabulary).get_indexer(array)
    hit = codes >= 0
    out[np.flatnonzero(hit), codes[hit]] = 1.0
    out[pd.isna(array) | (array == "")] = np.nan
    return out


def _indicator_columns(
    lists: pd.Series, vocabulary: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    n = len(lists)
    hot = np.zeros((n, len(vocabulary)), dtype=np.float32)
    values = lists.to_numpy(dtype=object)
    is_list = np.fromiter((v is not None and not isinstance(v, float | str) for v in values),
                          dtype=bool, count=n)
    count = np.full(n, np.nan, dtype=np.float32)
    count[is_list] = [len(v) for v in values[is_list]]
    if vocabulary and is_list.any():
        exploded = lists.reset_index(drop=True)[is_list].explode().dropna()
        codes = _index(vocabulary).get_indexer(exploded.astype(str))
        hit = codes >= 0
        hot[exploded.index.to_numpy()[hit], codes[hit]] = 1.0
    hot[~is_list] = np.nan
    return hot, count


@dataclass(frozen=True)
class FeatureBlock:
    """Address feature rows in compact form: their key columns beside a float64 matrix (what
    the stream's feature cache holds), accepted wherever a features DataFrame is."""

    keys: pd.DataFrame
    columns: tuple[str, ...]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def _as_text(values: pd.Series) -> np.ndarray:
    array = values.to_numpy()
    if array.dtype.kind in "iu":
        return array.astype(str).astype(object)
    return values.astype(str).to_numpy(dtype=object)


def _row_keys(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One string per row joining the key columns (dates normalised to ISO)."""
    parts = []
    for column in keys:
        values = frame[column]
        if column == "processing_date":
            parts.append(iso_dates(values).astype(object))
        else:
            parts.append(_as_text(values))
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "\x1f" + part
    return joined


def _float_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    try:
        return frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # a non-numeric value somewhere: coerce column by column
        return np.column_stack([_as_float(frame[c]) for c in columns])


def align_address_features(
    alerts: pd.DataFrame, address_features: pd.DataFrame | FeatureBlock | None,
    columns: Iterable[str]
) -> np.ndarray:
    """The address-feature block for each alert row (NaN where the address has no row/column).

    Rows are matched on the key columns both frames have; when the features frame holds one
    key twice, its last row wins.
    """
    columns = list(columns)
    block = np.full((len(alerts), len(columns)), np.nan, dtype=np.float32)
    if address_features is None or not len(address_features) or not columns or not len(alerts):
        return block
    if isinstance(address_features, FeatureBlock):
        key_frame, available = address_features.keys, address_features.columns
        position = {name: j for j, name in enumerate(available)}

        def take(rows: np.ndarray, names: list[str]) -> np.ndarray:
            return address_features.matrix[np.ix_(rows, [position[n] for n in names])]
    else:
        key_frame, available = address_features, address_features.columns

        def take(rows: np.ndarray, names: list[str]) -> np.ndarray:
            return _float_block(address_features.iloc[rows], names)
    keys = [c for c in KEY_COLUMNS if c in alerts and c in key_frame]
    right_keys = _row_keys(key_frame, keys)
    last = np.flatnonzero(~pd.Index(right_keys).duplicated(keep="last"))
    rows = pd.Index(right_keys[last]).get_indexer(_row_keys(alerts, keys))
    found = rows >= 0
    have = set(available)
    present = [j for j, name in enumerate(columns) if name in have]
    if not present or not found.any():
        return block
    values = np.require(take(last[rows[found]], [columns[j] for j in present]), np.float64, "W")
    timestamp_columns = [k for k, j in enumerate(present) if columns[j].endswith(TIMESTAMP_SUFFIX)]
    if timestamp_columns and "processing_date" in alerts:
        as_of = (iso_dates(alerts["processing_date"]).astype("datetime64[s]")
                 .astype(np.float64)[found])
        for k in timestamp_columns:
            seconds = values[:, k]
            seconds = np.where(seconds > 1e11, seconds / 1000.0, seconds)  # milliseconds → seconds
            values[:, k] = (as_of - seconds) / 86400.0
    elif timestamp_columns:
        values[:, timestamp_columns] = np.nan
    block[np.ix_(np.flatnonzero(found), present)] = values
    return block


def build_alert_matrix(
    spec: FeatureSpec, alerts: pd.DataFrame, address_features: pd.DataFrame | FeatureBlock | None
) -> np.ndarray:
    """Alerts (+ their address rows) → float32 matrix whose columns are ``spec.names``."""
    n = len(alerts)
    blocks: list[np.ndarray] = []
    numeric = np.full((n, len(ALERT_NUMERIC) + 1), np.nan, dtype=np.float32)
    for j, column in enumerate(ALERT_NUMERIC):
        if column in alerts:
            numeric[:, j] = _as_float(alerts[column])
    if "severity" in alerts:
        numeric[:, -1] = alerts["severity"].map(SEVERITY_RANK).to_numpy(np.float64, na_value=np.nan)
    blocks.append(numeric)
    if "risk_indicators" in alerts:
        hot, count = _indicator_columns(alerts["risk_indicators"], spec.risk_indicators)
    else:
        hot = np.full((n, len(spec.risk_indicators)), np.nan, dtype=np.float32)
        count = np.full(n, np.nan, dtype=np.float32)
    blocks.append(count[:, None])
    for column in ALERT_CATEGORICAL:
        vocabulary = spec.categories.get(column, ())
        if column in alerts:
            blocks.append(_one_hot(alerts[column].reset_index(drop=True), vocabulary))
        else:
            blocks.append(np.full((n, len(vocabulary)), np.nan, dtype=np.float32))
    blocks.append(hot)
    blocks.append(align_address_features(alerts, address_features, spec.address_features))
    matrix = np.hstack(blocks).astype(np.float32, copy=False)
    # Infinite values carry no meaning a tree can use reliably; they are treated as missing.
    matrix[~np.isfinite(matrix)] = np.nan
    assert matrix.shape[1] == len(spec.names)
    return matrix
