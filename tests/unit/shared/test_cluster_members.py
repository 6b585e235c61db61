"""Cluster members and list columns, taken in one pass over a frame: the same members, in the
same order, as a cluster-by-cluster reading, whatever shape the lists arrive in."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shared.cluster_features import member_table
from shared.columns import distinct, list_items, list_lengths


def _one_by_one(related: list, primary: list) -> list[list[str]]:
    """Each cluster on its own, as the definition reads: related ∪ primary, as text, sorted,
    missing ids left out."""
    out = []
    for ids, head in zip(related, primary, strict=True):
        found = set()
        if ids is not None and not isinstance(ids, float | str):
            found |= {v if isinstance(v, str) else str(v) for v in ids
                      if v is not None and v == v and v != ""}
        if isinstance(head, str) and head:
            found.add(head)
        out.append(sorted(found))
    return out


def _grouped(clusters: pd.DataFrame) -> list[list[str]]:
    members = member_table(clusters)
    return [members.ids[members.owner == k].tolist() for k in range(len(clusters))]


def test_members_match_a_cluster_by_cluster_reading_for_every_list_shape():
    rng = np.random.default_rng(7)
    pool = [f"a{i}" for i in range(40)] + ["Ä1", "b", "B", "a10", "a1 "]
    related, primary = [], []
    for k in range(300):
        ids = list(rng.choice(pool, size=int(rng.integers(0, 6))))
        shape = k % 6
        related.append([] if shape == 0 else np.array(ids, dtype=object) if shape == 1 else
                       ids + [None, ""] if shape == 2 else tuple(ids) if shape == 3 else
                       None if shape == 4 else [*ids, 17])
        primary.append(None if k % 5 == 0 else "" if k % 7 == 0 else str(rng.choice(pool)))
    clusters = pd.DataFrame({"related_alert_ids": related, "primary_alert_id": primary})
    assert _grouped(clusters) == _one_by_one(related, primary)
    assert member_table(clusters).counts().tolist() == [len(m) for m in _one_by_one(related, primary)]


def test_members_of_arrow_lists_as_read_from_the_engine():
    table = pa.table({"related_alert_ids": pa.array([["c", "a", "c"], [], None, ["z"]]),
                      "primary_alert_id": pa.array(["b", None, "x", "z"])})
    clusters = table.to_pandas()
    assert _grouped(clusters) == [["a", "b", "c"], [], ["x"], ["z"]]


def test_no_clusters_no_members_and_a_frame_without_member_columns():
    assert len(member_table(pd.DataFrame({"related_alert_ids": []})).ids) == 0
    members = member_table(pd.DataFrame({"cluster_id": ["c1", "c2"]}))
    assert members.counts().tolist() == [0, 0]


@pytest.mark.parametrize("values", [
    [np.array(["a", "b"], dtype=object), None, np.array([], dtype=object), np.array(["c"], dtype=object)],
    [["a", "b"], None, [], ("c",)],
    [["a", "b"], float("nan"), "not a list", ["c"]],
])
def test_list_items_and_lengths(values):
    listed, lengths, items = list_items(pd.Series(values, dtype=object))
    assert lengths.tolist() == [2, 0, len(values[2]) if listed[2] else 0, 1]
    assert listed.tolist() == [True, False, not isinstance(values[2], str), True]
    assert items.tolist() == ["a", "b", "c"]
    assert list_lengths(pd.Series(values, dtype=object))[1].tolist() == lengths.tolist()


def test_text_columns_get_the_same_codes_from_arrow_as_from_python_strings():
    values = ["high", None, "low", "", "high", "critical", None]
    arrow_codes, arrow_values = distinct(pd.Series(values, dtype="str"))
    object_codes, object_values = distinct(pd.Series(values, dtype=object))
    assert [arrow_values[c] if c >= 0 else None for c in arrow_codes] == \
        [object_values[c] if c >= 0 else None for c in object_codes]
