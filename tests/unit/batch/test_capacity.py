"""Operating points at the review capacity, on a queue small enough to count by hand."""

from __future__ import annotations

import numpy as np

from batch.capacity import capacities, operating_points, queue_positions


def test_capacities_run_from_zero_to_twice_the_capacity():
    grid = capacities(100)
    assert grid[0] == 0 and grid[-1] == 200 and len(grid) == 20 and grid == sorted(set(grid))


def test_queue_positions_follow_rank_score_then_alert_id_within_each_day():
    groups = np.array(["d1", "d1", "d1", "d2", "d2"])
    ids = np.array(["b", "a", "c", "x", "y"])
    rank = np.array([0.5, 0.5, 0.9, 0.1, 0.2])
    assert queue_positions(groups, rank, ids).tolist() == [2, 1, 0, 1, 0]


def test_recall_precision_and_alerts_needed_per_day_and_typology():
    # two days of 4 alerts; positives at queue positions 0 and 2 (day 1) and 3 (day 2)
    groups = np.array(["d1"] * 4 + ["d2"] * 4)
    ids = np.array([f"a{i}" for i in range(8)])
    rank = np.array([4, 3, 2, 1, 4, 3, 2, 1], dtype=float)
    labels = np.array([1, 0, 1, np.nan, 0, np.nan, np.nan, 1])
    typology = np.array(["mixing", "x", "layering", "x", "x", "x", "x", "mixing"])
    points = operating_points(groups, ids, rank, labels, typology, capacity=2)
    curve = {row["alerts_per_day"]: row for row in points["overall"]["curve"]}
    assert curve[2]["positives_found"] == 1 and curve[2]["recall"] == round(1 / 3, 6)
    assert curve[2]["precision"] == round(1 / 3, 6)  # 3 labelled among the 4 reviewed
    assert curve[4]["recall"] == 1.0
    assert points["recall_at_capacity"] == round(1 / 3, 6)
    assert points["overall"]["alerts_per_day_for_recall"] == {"90%": 4, "95%": 4, "99%": 4}
    mixing = points["per_typology"]["mixing"]
    assert mixing["positives"] == 2 and mixing["alerts_per_day_for_recall"]["90%"] == 4
    assert points["per_typology"]["layering"]["alerts_per_day_for_recall"]["90%"] == 3
    assert points["per_typology"]["x"]["alerts_per_day_for_recall"]["90%"] is None  # no positives
