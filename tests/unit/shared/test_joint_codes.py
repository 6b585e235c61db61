"""``joint_codes``: the one rule by which two columns' values are matched as integers (the
stream's and backfill's join of alerts to address features, training's cluster labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.columns import joint_codes


def _equal_pairs(left_codes: np.ndarray, right_codes: np.ndarray) -> set[tuple[int, int]]:
    return {(i, j) for i, a in enumerate(left_codes) for j, b in enumerate(right_codes) if a == b}


SHAPES = {
    "object arrays": lambda values: np.asarray(values, dtype=object),
    "lists": list,
    "object Series": lambda values: pd.Series(values, dtype=object),
    "Arrow strings": lambda values: pd.Series(values, dtype="string[pyarrow]"),
}


@pytest.mark.parametrize("left_shape", SHAPES)
@pytest.mark.parametrize("right_shape", SHAPES)
def test_codes_are_equal_exactly_where_the_text_is(left_shape, right_shape):
    left = ["0xA", "0xa", "0xb", "é", "0xA"]
    right = ["0xa", "0xc", "0xA", "é", "0xB"]
    lc, rc, n = joint_codes(SHAPES[left_shape](left), SHAPES[right_shape](right))
    assert _equal_pairs(lc, rc) == {(i, j) for i, a in enumerate(left) for j, b in enumerate(right) if a == b}
    assert (lc[0] == lc[4]) and len({*lc, *rc}) == n == len({*left, *right})
    assert lc.min() >= 0 and rc.min() >= 0 and max(lc.max(), rc.max()) == n - 1


def test_integers_match_by_value_whatever_their_width_or_container():
    left = np.array([7, 30, 7], dtype=np.int64)              # the stream's decoded window_days
    right = pd.Series([30, 7, 90], dtype=np.uint16)          # the engine's UInt16 column
    lc, rc, n = joint_codes(left, right)
    assert _equal_pairs(lc, rc) == {(0, 1), (1, 0), (2, 1)} and n == 3


def test_a_missing_value_is_a_value_of_its_own_not_minus_one():
    """Codes combine as ``a * n + b``: a code of -1 would make (missing, last) collide with the
    row before it, so missing gets a code in 0..n-1 like every value, and meets only missing."""
    left = pd.Series(["a", None, "b"], dtype=object)
    right = pd.Series([np.nan, "a", "c"], dtype=object)
    lc, rc, n = joint_codes(left, right)
    assert n == 4 and set(lc) | set(rc) == {0, 1, 2, 3}
    assert _equal_pairs(lc, rc) == {(0, 1), (1, 0)}


def test_empty_sides():
    lc, rc, n = joint_codes(np.empty(0, dtype=object), pd.Series(["a"], dtype=object))
    assert len(lc) == 0 and list(rc) == [0] and n == 1
    lc, rc, n = joint_codes([], [])
    assert len(lc) == len(rc) == n == 0
