"""Column helpers shared by the feature builders, the score tables and the loaders: vectorised,
none builds a DataFrame; each distinct value of a column is looked at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

MAX_CATEGORIES = 64  # most frequent values a categorical keeps; the rest are "unseen"


def as_floats(column: Any) -> np.ndarray:
    """A column as float64; None, text and other non-numbers become NaN."""
    if isinstance(column, pd.Series):
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan)


def as_objects(column: Any) -> np.ndarray:
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=object, na_value=None)
    return np.asarray(column, dtype=object)


def _missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def distinct(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, distinct values): each distinct value is then looked at once, whatever
    the number of rows. Missing values (None, NaN) get code -1."""
    codes, uniques = pd.factorize(as_objects(column), use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def positions(codes: np.ndarray, uniques: np.ndarray, position: Mapping[str, int]) -> np.ndarray:
    """Each row's position in ``position`` (-1: not there; -2: missing, such as '' or None)."""
    table = [-2 if _missing(v) else position.get(v if isinstance(v, str) else str(v), -1)
             for v in uniques]
    return np.array([*table, -2], dtype=np.int64)[codes]  # code -1 (missing) takes the last


def one_hot(column: Any, vocabulary: tuple[str, ...]) -> np.ndarray:
    """One column per vocabulary value; an unseen value is all zeros, a missing one all NaN."""
    codes, uniques = distinct(column)
    out = np.zeros((len(codes), len(vocabulary)), dtype=np.float32)
    at = positions(codes, uniques, {v: j for j, v in enumerate(vocabulary)})
    out[at == -2] = np.nan
    hit = np.flatnonzero(at >= 0)
    out[hit, at[hit]] = 1.0
    return out


def ranks(column: Any, order: Mapping[str, float]) -> np.ndarray:
    """``order[value]`` per row, NaN for a value not in it."""
    codes, uniques = distinct(column)
    values = np.array([order.get(v, np.nan) if isinstance(v, str) else np.nan for v in uniques] + [np.nan])
    return values[codes]  # code -1 (missing) takes the trailing NaN


def is_listlike(value: object) -> bool:
    return value is not None and not isinstance(value, float | str)


def vocabulary(values: Iterable[object]) -> tuple[str, ...]:
    """The (at most MAX_CATEGORIES) most frequent non-missing values, sorted."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series[series.notna()].astype(str)
    counts = series[series != ""].value_counts(sort=False)
    ordered = sorted(zip(counts.index, counts.to_numpy(), strict=True),
                     key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES]
    return tuple(sorted(str(name) for name, _ in ordered))


def day_numbers(column: Any) -> np.ndarray:
    """Dates (date objects, datetimes, numpy dates or ISO strings) as datetime64[D]; each
    distinct value is converted once."""
    if isinstance(column, pd.Series):
        column = column.to_numpy()
    array = np.asarray(column)
    if array.dtype.kind == "M":
        return array.astype("datetime64[D]")
    codes, uniques = pd.factorize(array, use_na_sentinel=False)
    if len(uniques) and isinstance(uniques[0], dt.datetime):
        # datetimes, possibly with a time zone: their UTC day, as pandas reads them
        days = pd.to_datetime(pd.Series(uniques), utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
    else:
        days = np.asarray(list(uniques), dtype="datetime64[D]")
    return days[codes]


def iso_dates(values: Any) -> np.ndarray:
    """Dates as 'YYYY-MM-DD' strings (object array); each distinct date is formatted once."""
    codes, days = pd.factorize(day_numbers(values), use_na_sentinel=False)
    return np.asarray(days).astype(str).astype(object)[codes]


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
