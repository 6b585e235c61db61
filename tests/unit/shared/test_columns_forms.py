"""The column helpers give the same values whether a column comes as a pandas Series (the batch)
or as a list or numpy array (the stream, which never loads pandas): stream = backfill rests on it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from shared.columns import (
    as_floats,
    day_numbers,
    distinct,
    factorize,
    iso_dates,
    list_items,
    one_hot,
    ranks,
)

NAN = float("nan")
OBJECT_COLUMNS = [
    ["high", "low", None, "high", NAN, "", "critical", np.nan, "low"],
    [1, 1.0, True, "1", None, 2, np.float64(2.0), NAN],
    ["a"] * 5,
    [None, None, NAN],
    [],
]


@pytest.mark.parametrize("values", OBJECT_COLUMNS)
@pytest.mark.parametrize("missing", [True, False])
def test_factorize_is_pandas_factorize(values, missing):
    array = np.array(values, dtype=object)
    codes, uniques = factorize(array, missing=missing)
    expected_codes, expected_uniques = pd.factorize(array, use_na_sentinel=missing)
    assert codes.tolist() == expected_codes.tolist()
    assert [type(v) for v in uniques] == [type(v) for v in expected_uniques]
    assert [v if v == v else "NaN" for v in uniques] == [v if v == v else "NaN" for v in expected_uniques]


def test_missing_values_are_minus_one_or_one_value_of_their_own():
    array = np.array([float("nan"), "x", float("nan"), None], dtype=object)  # distinct NaN objects
    assert factorize(array)[0].tolist() == [-1, 0, -1, -1]
    codes, uniques = factorize(array, missing=False)
    assert codes.tolist() == [0, 1, 0, 0] and uniques[1:].tolist() == ["x"]


def _forms(values):
    """The same column as the stream passes it (array), as a list, and as the batch's Series."""
    return [np.array(values, dtype=object), list(values), pd.Series(values, dtype=object)]


@pytest.mark.parametrize("values", OBJECT_COLUMNS[:2])
def test_one_hot_ranks_and_distinct_agree_across_forms(values):
    vocabulary = ("1", "critical", "high", "True")
    order = {"low": 0.0, "high": 2.0, "critical": 3.0}
    results = []
    for column in _forms(values):
        codes, uniques = distinct(column)
        results.append((one_hot(column, vocabulary).tobytes(), ranks(column, order).tobytes(),
                        [str(uniques[c]) if c >= 0 else None for c in codes]))
    assert results[0] == results[1] == results[2]


def test_text_strings_as_floats_as_pandas_reads_them():
    values = [1, "2.5", " 3 ", "1e3", "inf", "abc", None, True, "1_000", b"4", NAN, dt.date(2024, 1, 1)]
    expected = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)
    for column in (values, np.array(values, dtype=object)):
        got = as_floats(column)
        assert np.array_equal(got, expected, equal_nan=True), (got, expected)


def test_numbers_as_floats_agree_across_forms():
    values = [1.5, None, 3, np.nan, -0.0, 1e300]
    arrays = [as_floats(column) for column in _forms(values)]
    assert all(np.array_equal(a, arrays[0], equal_nan=True) for a in arrays)
    assert arrays[0].dtype == np.float64


DATES = [
    "2024-03-01", dt.date(2024, 3, 2), None, dt.datetime(2024, 3, 3, 23, 59),
    dt.datetime(2024, 3, 4, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),  # 3 March in UTC
    "2024-03-01",
]


def test_day_numbers_read_every_date_form_alike():
    expected = np.array(["2024-03-01", "2024-03-02", "NaT", "2024-03-03", "2024-03-03", "2024-03-01"],
                        dtype="datetime64[D]")
    for column in _forms(DATES):
        assert np.array_equal(day_numbers(column), expected, equal_nan=True)
    assert np.array_equal(day_numbers(pd.Series(DATES[3:4]).astype("datetime64[ns]")), expected[3:4])


def test_datetimes_with_time_zones_are_their_utc_day_as_pandas_reads_them():
    stamps = [dt.datetime(2024, 3, 4, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
              dt.datetime(2024, 3, 4, 22, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))]
    by_pandas = pd.to_datetime(pd.Series(stamps), utc=True).dt.tz_localize(None).to_numpy("datetime64[D]")
    assert np.array_equal(day_numbers(stamps), by_pandas)
    assert day_numbers(stamps).astype(str).tolist() == ["2024-03-03", "2024-03-05"]


def test_iso_dates_format_each_day_once_and_keep_row_order():
    got = iso_dates(DATES)
    assert got.tolist() == ["2024-03-01", "2024-03-02", "NaT", "2024-03-03", "2024-03-03", "2024-03-01"]
    assert got.dtype == object


def test_list_items_take_lists_and_arrays_and_nothing_else():
    column = [["a", "b"], None, np.array(["c"], dtype=object), NAN, "text", (), 7, ("d",)]
    for form in (column, np.array(column, dtype=object), pd.Series(column, dtype=object)):
        listed, lengths, items = list_items(form)
        assert listed.tolist() == [True, False, True, False, False, True, False, True]
        assert lengths.tolist() == [2, 0, 1, 0, 0, 0, 0, 1]
        assert items.tolist() == ["a", "b", "c", "d"]
