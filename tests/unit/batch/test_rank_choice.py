"""The learning-to-rank model ships only when it beats sorting by the classifier on validation;
otherwise rank_score is the classifier's score, the same in every scorer of that version."""

from __future__ import annotations

import dataclasses

import numpy as np

from batch.evaluate import choose_rank_source
from shared.scoring import RiskScoring


def _validation():
    groups = np.array(["ethereum/2025-01-05"] * 20)
    labels = np.array([1.0] * 5 + [0.0] * 15)
    good = np.linspace(1.0, 0.0, 20)  # positives first: a perfect ranking
    return groups, labels, good


def test_a_ranker_that_loses_on_validation_is_not_used():
    groups, labels, good = _validation()
    source, why, figures = choose_rank_source(groups, labels, ranker=-good, classifier=good)
    assert source == "classifier" and "does not beat" in why
    assert figures["ranker_ndcg"] < figures["classifier_ndcg"] == 1.0


def test_a_ranker_that_wins_is_used_and_a_tie_keeps_the_classifier():
    groups, labels, good = _validation()
    worse = good.copy()
    worse[[0, 10]] = worse[[10, 0]]  # one positive pushed down
    assert choose_rank_source(groups, labels, ranker=good, classifier=worse)[0] == "ranker"
    assert choose_rank_source(groups, labels, ranker=good, classifier=good)[0] == "classifier"
    assert choose_rank_source(groups[:0], labels[:0], good[:0], good[:0])[0] == "classifier"


def test_rank_score_falls_back_to_the_classifier_score(bundle, sot_frames):
    alerts, features, _, _ = sot_frames
    ranker = dataclasses.replace(bundle.alert_ranker,
                                 metadata={**bundle.alert_ranker.metadata, "rank_source": "classifier"})
    fallback = RiskScoring(dataclasses.replace(bundle, alert_ranker=ranker))
    learned = RiskScoring(bundle)
    chunk = alerts.head(200)
    with_fallback = fallback.score_alerts(chunk, features)
    with_ranker = learned.score_alerts(chunk, features)
    assert fallback.ranks_by_score and not learned.ranks_by_score
    np.testing.assert_array_equal(with_fallback["rank_score"], with_fallback["score"])
    np.testing.assert_array_equal(with_fallback["score"], with_ranker["score"])
    assert not np.array_equal(with_ranker["rank_score"], with_ranker["score"])
