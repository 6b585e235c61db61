"""The one feature builder every path uses (training, backfill, stream).

Invariants (DESIGN §3):
- an alert's features depend only on that alert's row and its address's feature row — never on the
  other alerts of the batch, never on the label table;
- the feature list is taken from the data at training time and stored with the model, in order;
  at scoring time absent features are NaN and unknown extra columns are ignored;
- categoricals are one-hot over a vocabulary fixed at training (sorted, so the order is stable);
  an unseen category is all zeros, a missing one is NaN.
"""

from __future__ import annotations

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


def normalise_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Key columns in one dtype each, so frames from Parquet, ClickHouse and JSON join alike."""
    out = frame.copy()
    if "processing_date" in out:
        out["processing_date"] = pd.to_datetime(out["processing_date"]).dt.strftime("%Y-%m-%d")
    if "window_days" in out:
        out["window_days"] = out["window_days"].astype("int64")
    for column in ("network", "address"):
        if column in out:
            out[column] = out[column].astype(str)
    return out


def _as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _one_hot(values: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    out = np.zeros((len(values), len(vocabulary)), dtype=np.float32)
    if not vocabulary:
        return out
    codes = pd.Index(vocabulary).get_indexer(values.astype(object))
    hit = codes >= 0
    out[np.flatnonzero(hit), codes[hit]] = 1.0
    missing = (values.isna() | (values.astype("string") == "")).to_numpy()
    out[missing] = np.nan
    return out


def _indicator_columns(
    lists: pd.Series, vocabulary: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    n = len(lists)
    hot = np.zeros((n, len(vocabulary)), dtype=np.float32)
    count = np.full(n, np.nan, dtype=np.float32)
    is_list = lists.map(lambda v: v is not None and not isinstance(v, float | str)).to_numpy(
        dtype=bool
    )
    lengths = lists.map(lambda v: len(v) if v is not None and not isinstance(v, float | str) else 0)
    count[is_list] = lengths.to_numpy(dtype=np.float32)[is_list]
    if vocabulary and is_list.any():
        exploded = lists.reset_index(drop=True)[is_list].explode().dropna()
        codes = pd.Index(vocabulary).get_indexer(exploded.astype(str))
        hit = codes >= 0
        hot[exploded.index.to_numpy()[hit], codes[hit]] = 1.0
    hot[~is_list] = np.nan
    return hot, count


def align_address_features(
    alerts: pd.DataFrame, address_features: pd.DataFrame | None, columns: Iterable[str]
) -> np.ndarray:
    """The address-feature block for each alert row (NaN where the address has no row/column)."""
    columns = list(columns)
    if address_features is None or not len(address_features) or not columns:
        return np.full((len(alerts), len(columns)), np.nan, dtype=np.float32)
    left = normalise_keys(alerts[[c for c in KEY_COLUMNS if c in alerts]])
    keys = [c for c in KEY_COLUMNS if c in left and c in address_features]
    right = address_features[keys + [c for c in columns if c in address_features]]
    right = normalise_keys(right).drop_duplicates(keys, keep="last")
    merged = left.merge(right, on=keys, how="left", sort=False, validate="many_to_one")
    block = np.full((len(alerts), len(columns)), np.nan, dtype=np.float32)
    as_of = None
    for j, name in enumerate(columns):
        if name not in merged:
            continue
        values = _as_float(merged[name])
        if name.endswith(TIMESTAMP_SUFFIX):
            if "processing_date" not in merged:
                continue
            if as_of is None:
                as_of = pd.to_datetime(merged["processing_date"]).to_numpy("datetime64[s]").astype(np.float64)
            seconds = np.where(values > 1e11, values / 1000.0, values)  # milliseconds → seconds
            values = (as_of - seconds) / 86400.0
        block[:, j] = values
    return block


def build_alert_matrix(
    spec: FeatureSpec, alerts: pd.DataFrame, address_features: pd.DataFrame | None
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
