"""Column helpers shared by the feature builders, the score tables and the loaders: vectorised,
none builds a DataFrame; each distinct value of a column is looked at once.

A column is a pandas Series (training, backfill) or a list or numpy array (the stream). pandas is
imported only by the callers that bring Series: the stream's scoring process never loads it (about
30 MB of its resident memory), so these helpers recognise a Series without importing pandas
(:func:`is_series`) and work on arrays with numpy alone. A helper gives the same values whichever
form the same column comes in, which the stream = backfill guarantee rests on."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.pandas_gate import load_pandas

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 64  # most frequent values a categorical keeps; the rest are "unseen"


def is_series(column: object) -> bool:
    """A pandas Series, told without importing pandas (no Series exists before someone did)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(column, pandas.Series)


def is_frame(table: object) -> bool:
    """A pandas DataFrame, told without importing pandas."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(table, pandas.DataFrame)


def as_floats(column: Any) -> np.ndarray:
    """A column as float64; None, text and other non-numbers become NaN."""
    if is_series(column):
        pd = load_pandas()
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        codes, uniques = factorize(np.asarray(column, dtype=object))
        return np.array([*map(_number, uniques), np.nan], dtype=np.float64)[codes]


def _number(value: object) -> float:
    """One value as pandas' ``to_numeric(errors="coerce")`` reads it: numbers and numeric text
    as floats, anything else NaN."""
    if isinstance(value, bool | int | float | np.number):
        return float(value)
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        if "_" not in text:  # Python's float() accepts "1_000"; pandas does not
            try:
                return float(text)
            except ValueError:
                pass
    return np.nan


def as_objects(column: Any) -> np.ndarray:
    if is_series(column):
        return column.to_numpy(dtype=object, na_value=None)
    return np.asarray(column, dtype=object)


def _is_nan(value: object) -> bool:
    return isinstance(value, float | np.floating) and value != value


def factorize(values: Any, missing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, distinct values in order of first appearance), as ``pandas.factorize``
    gives them: values equal in Python (1, 1.0, True) share a code and the first one seen stands
    for them. With ``missing``, None and NaN get code -1 and are not among the values; without,
    they are one value, NaN."""
    items = np.asarray(values, dtype=object).tolist()  # an object array's own objects
    lookup: dict = {}
    uniques: list = []
    missing_code = -1
    for value in dict.fromkeys(items):  # hashed in C; a NaN object is found by its identity
        if value is None or _is_nan(value):
            if missing_code == -1 and not missing:
                missing_code = len(uniques)
                uniques.append(np.nan)
            lookup[value] = missing_code
        else:
            lookup[value] = len(uniques)
            uniques.append(value)
    codes = np.fromiter(map(lookup.__getitem__, items), dtype=np.int64, count=len(items))
    return codes, _objects(uniques)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def is_missing(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and value != value)


def distinct(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, distinct values): each distinct value is then looked at once, whatever
    the number of rows. Missing values (None, NaN) get code -1."""
    if is_series(column):  # the batch's columns: pandas' hash tables (2-3x faster on 1M rows)
        pd = load_pandas()
        if isinstance(column.dtype, pd.StringDtype):  # by Arrow, no Python strings hashed
            codes, uniques = column.factorize(use_na_sentinel=True)
        else:
            codes, uniques = pd.factorize(as_objects(column), use_na_sentinel=True)
        return codes, np.asarray(uniques, dtype=object)
    return factorize(as_objects(column))  # the same codes and values (test_columns_forms)


def joint_codes(left: Any, right: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """(codes of ``left``, codes of ``right``, how many): integers 0..n-1, equal across the two
    columns exactly where their values are. Integers are compared by value, anything else by its
    text, factorized by Arrow (no Python string is hashed); a missing value is a value of its own
    (never -1, so codes combined as ``a * n + b`` cannot collide)."""
    pd = load_pandas()  # key joins are the batch's (the stream looks address rows up itself)

    def series(column: Any) -> pd.Series:
        if is_series(column):
            return column
        return pd.Series(column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object))
    both = pd.concat([series(left), series(right)], ignore_index=True)
    if not pd.api.types.is_integer_dtype(both.dtype):
        both = both.astype(str)
    codes, uniques = pd.factorize(both, use_na_sentinel=False)
    return codes[:len(left)], codes[len(left):], len(uniques)


def positions(codes: np.ndarray, uniques: np.ndarray, position: Mapping[str, int]) -> np.ndarray:
    """Each row's position in ``position`` (-1: not there; -2: missing, such as '' or None)."""
    table = [-2 if is_missing(v) else position.get(v if isinstance(v, str) else str(v), -1)
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
    """A list, tuple or array: anything with a length but text (None, NaN and numbers have none)."""
    return hasattr(type(value), "__len__") and not isinstance(value, str)


_LIST_TYPES = frozenset({np.ndarray, list})


def _lists(column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(values as objects, is each a list, its length, whether every list is a numpy array)."""
    values = as_objects(column)
    n = len(values)
    # By type first, in C: arrays and lists are lists, None and NaN are not; only the rest
    # (text, numbers, tuples, ...) are looked at one by one.
    types = list(map(type, values))
    listed = np.fromiter(map(_LIST_TYPES.__contains__, types), dtype=bool, count=n)
    other = np.flatnonzero(~listed)
    listed[other] = np.fromiter(map(is_listlike, values[other]), dtype=bool, count=len(other))
    lengths = np.zeros(n, dtype=np.int64)
    chosen = values[listed]
    lengths[listed] = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    return values, listed, lengths, types.count(np.ndarray) == len(chosen)


def list_lengths(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(is each a list, its length) for a column of lists (numpy arrays, lists, tuples); None,
    NaN and text are not lists and have length 0."""
    _, listed, lengths, _ = _lists(column)
    return listed, lengths


def list_items(column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is each a list, its length, every item of every list in row order as an object array)."""
    values, listed, lengths, all_arrays = _lists(column)
    chosen = values[listed]
    if not len(chosen):
        return listed, lengths, np.empty(0, dtype=object)
    if all_arrays:
        # Lists read from Arrow arrive as numpy arrays: joined in C, not item by item.
        items = np.concatenate(chosen.tolist()).astype(object, copy=False)
    else:
        items = np.fromiter(itertools.chain.from_iterable(chosen), dtype=object, count=int(lengths.sum()))
    return listed, lengths, items


def vocabulary(values: Iterable[object]) -> tuple[str, ...]:
    """The (at most MAX_CATEGORIES) most frequent non-missing values, sorted."""
    pd = load_pandas()  # a model's vocabulary is fixed at training, which reads frames

    if is_series(values):
        series = values
    else:
        series = pd.Series(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    series = series[series.notna()]
    counts = series.value_counts(sort=False)  # each distinct value is made text once, not each row
    if not isinstance(series.dtype, pd.StringDtype):
        counts = pd.Series(counts.to_numpy(), index=[str(v) for v in counts.index]).groupby(level=0).sum()
    counts = counts[counts.index != ""]
    ordered = sorted(zip(counts.index, counts.to_numpy(), strict=True),
                     key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES]
    return tuple(sorted(str(name) for name, _ in ordered))


def day_numbers(column: Any) -> np.ndarray:
    """Dates (date objects, datetimes, numpy dates or ISO strings) as datetime64[D]; each
    distinct value is converted once."""
    if is_series(column):
        column = column.to_numpy()
    array = np.asarray(column)
    if array.dtype.kind == "M":
        return array.astype("datetime64[D]")
    codes, uniques = factorize(array, missing=False)
    days = np.asarray([_day(value) for value in uniques], dtype="datetime64[D]")
    return days[codes]


def _day(value: object) -> object:
    """A datetime (possibly with a time zone) as its UTC day, as pandas reads it; a missing one
    as None (NaT); anything else (a date, an ISO string) as it is."""
    if value is None or _is_nan(value):
        return None
    if isinstance(value, dt.datetime):
        if value != value:  # pandas' NaT
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return dt.date(value.year, value.month, value.day)
    return value


def iso_dates(values: Any) -> np.ndarray:
    """Dates as 'YYYY-MM-DD' strings (object array); each distinct date is formatted once."""
    days, codes = np.unique(day_numbers(values), return_inverse=True)  # NaT is one value
    return days.astype(str).astype(object)[codes.reshape(-1)]


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
