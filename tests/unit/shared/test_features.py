import numpy as np
import pandas as pd
import pytest

import shared.features as features_module
from shared.features import (
    FORBIDDEN_FEATURES,
    FeatureSpec,
    build_alert_matrix,
    fit_feature_spec,
)


def _alert(**overrides):
    row = {
        "network": "ethereum", "processing_date": "2025-01-02", "window_days": 7,
        "alert_id": "a1", "address": "0xa", "typology_type": "mixing",
        "pattern_type": "graph_pattern", "severity": "high",
        "suspected_address_type": "mixer", "suspected_address_subtype": "tumbler",
        "alert_confidence_score": 0.7, "volume_usd": 1200.5,
        "risk_indicators": ["high_velocity", "mixer_interaction"],
    }
    row.update(overrides)
    return row


@pytest.fixture
def frames():
    alerts = pd.DataFrame([
        _alert(),
        _alert(alert_id="a2", address="0xb", typology_type="fan_in", severity="low",
               risk_indicators=["exchange_deposit"], volume_usd=10.0),
        _alert(alert_id="a3", address="0xc", typology_type="peel_chain", severity="critical"),
    ])
    features = pd.DataFrame({
        "network": "ethereum", "processing_date": "2025-01-02", "window_days": 7,
        "address": ["0xa", "0xb", "0xc"], "degree_in": [3, 10, 1],
        "velocity_score": [0.9, 0.1, np.nan], "is_mixer_like": [True, False, False],
    })
    return alerts, features


def test_spec_takes_feature_list_from_data_sorted(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    assert spec.address_features == ("degree_in", "is_mixer_like", "velocity_score")
    assert spec.categories["typology_type"] == ("fan_in", "mixing", "peel_chain")
    assert "typology_type=mixing" in spec.names and spec.names[:2] == ("alert_confidence_score", "volume_usd")


def test_label_columns_never_become_features(frames):
    alerts, features = frames
    leaky = features.assign(label_confidence=[0.9, 0.1, 0.5], risk_level=1.0, p_illicit=0.3)
    spec = fit_feature_spec(alerts, leaky)
    assert not set(spec.names) & FORBIDDEN_FEATURES
    assert "label_confidence" not in spec.address_features


def test_an_alerts_features_do_not_depend_on_the_rest_of_the_batch(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    whole = build_alert_matrix(spec, alerts, features)
    for i in range(len(alerts)):
        alone = build_alert_matrix(spec, alerts.iloc[[i]], features)
        np.testing.assert_array_equal(alone[0], whole[i])
    reversed_rows = build_alert_matrix(spec, alerts.iloc[::-1], features)
    np.testing.assert_array_equal(reversed_rows[::-1], whole)


def test_a_matrix_built_in_parts_side_by_side_equals_the_whole(frames, monkeypatch):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    many = alerts.sample(n=9 * len(alerts), replace=True, random_state=1).reset_index(drop=True)
    whole = build_alert_matrix(spec, many, features)
    monkeypatch.setattr(features_module, "PARALLEL_MIN_ROWS", 2)
    built: list[int] = []
    original = features_module._in_parts
    monkeypatch.setattr(features_module, "_in_parts",
                        lambda *args: built.append(args[3]) or original(*args))
    in_parts = build_alert_matrix(spec, many, features, threads=3)
    assert built == [3]  # it did split
    np.testing.assert_array_equal(in_parts, whole)


def test_missing_values_become_nan_and_extra_columns_are_ignored(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    names = list(spec.names)
    base = build_alert_matrix(spec, alerts, features)
    # no feature row for the address → its address features are NaN
    orphan = build_alert_matrix(spec, alerts.assign(address="0xnew"), features)
    assert np.isnan(orphan[:, names.index("degree_in")]).all()
    # a feature column the source dropped → NaN, the rest unchanged
    dropped = build_alert_matrix(spec, alerts, features.drop(columns=["degree_in"]))
    assert np.isnan(dropped[:, names.index("degree_in")]).all()
    np.testing.assert_array_equal(dropped[:, names.index("velocity_score")], base[:, names.index("velocity_score")])
    # unknown extra columns, on either table, change nothing
    extra = build_alert_matrix(spec, alerts.assign(new_col=5.0), features.assign(brand_new=1.0))
    np.testing.assert_array_equal(extra, base)
    # the source reordering its columns changes nothing
    np.testing.assert_array_equal(build_alert_matrix(spec, alerts[alerts.columns[::-1]], features[features.columns[::-1]]), base)


def test_categoricals_unseen_is_zero_missing_is_nan(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    names = list(spec.names)
    columns = [i for i, n in enumerate(names) if n.startswith("typology_type=")]
    unseen = build_alert_matrix(spec, alerts.assign(typology_type="brand_new_typology"), features)
    assert (unseen[:, columns] == 0).all()
    missing = build_alert_matrix(spec, alerts.assign(typology_type=None), features)
    assert np.isnan(missing[:, columns]).all()
    absent = build_alert_matrix(spec, alerts.drop(columns=["typology_type", "risk_indicators"]), features)
    assert np.isnan(absent[:, columns]).all()
    assert np.isnan(absent[:, names.index("risk_indicator_count")]).all()


def test_indicators_severity_booleans_and_infinities(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    names = list(spec.names)
    x = build_alert_matrix(spec, alerts.assign(volume_usd=[np.inf, 1.0, -np.inf]), features)
    assert x[0, names.index("risk_indicator=mixer_interaction")] == 1.0
    assert x[1, names.index("risk_indicator=mixer_interaction")] == 0.0
    assert list(x[:, names.index("risk_indicator_count")]) == [2.0, 1.0, 2.0]
    assert list(x[:, names.index("severity_rank")]) == [2.0, 0.0, 3.0]
    assert list(x[:, names.index("is_mixer_like")]) == [1.0, 0.0, 0.0]
    assert np.isnan(x[0, names.index("volume_usd")]) and np.isnan(x[2, names.index("volume_usd")])
    assert x.dtype == np.float32


def test_keys_join_across_representations(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    base = build_alert_matrix(spec, alerts, features)
    as_dates = features.assign(processing_date=pd.to_datetime(features.processing_date),
                               window_days=features.window_days.astype("uint16"))
    np.testing.assert_array_equal(build_alert_matrix(spec, alerts, as_dates), base)


def test_spec_round_trips_and_detects_tampering(frames):
    spec = fit_feature_spec(*frames)
    data = spec.to_dict()
    assert FeatureSpec.from_dict(data) == spec
    data["names"] = data["names"][::-1]
    with pytest.raises(ValueError):
        FeatureSpec.from_dict(data)


def test_timestamps_enter_as_age_at_the_processing_date(frames):
    alerts, features = frames
    day = pd.Timestamp("2025-01-02", tz="UTC").timestamp()
    features = features.assign(first_activity_timestamp=[day - 86400 * 10, (day - 86400 * 2) * 1000, np.nan])
    spec = fit_feature_spec(alerts, features)
    assert "first_activity_age_days" in spec.names and "first_activity_timestamp" not in spec.names
    x = build_alert_matrix(spec, alerts, features)
    ages = x[:, list(spec.names).index("first_activity_age_days")]
    assert ages[0] == 10.0 and ages[1] == 2.0 and np.isnan(ages[2])


def test_duplicate_feature_rows_last_wins_and_text_values_are_missing(frames):
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    names = list(spec.names)
    newer = features.iloc[[0]].assign(degree_in=99)
    x = build_alert_matrix(spec, alerts, pd.concat([features, newer], ignore_index=True))
    assert x[0, names.index("degree_in")] == 99.0 and x[1, names.index("degree_in")] == 10.0
    texty = features.astype({"degree_in": object})
    texty.loc[1, "degree_in"] = "n/a"
    y = build_alert_matrix(spec, alerts, texty)
    assert np.isnan(y[1, names.index("degree_in")]) and y[0, names.index("degree_in")] == 3.0


def test_reordering_blocks_moves_names_with_their_columns(frames, monkeypatch):
    """A feature's name is declared by the block that computes it: blocks in another order give
    the same named columns, and a model saved with the old order refuses to load rather than
    explain one feature under another's name."""
    import shared.features as features_module
    alerts, features = frames
    spec = fit_feature_spec(alerts, features)
    base = build_alert_matrix(spec, alerts, features)
    stored = spec.to_dict()
    original = features_module.spec_blocks
    monkeypatch.setattr(features_module, "spec_blocks", lambda s: original(s)[::-1])
    moved = fit_feature_spec(alerts, features)
    assert moved.names != spec.names and sorted(moved.names) == sorted(spec.names)
    shuffled = build_alert_matrix(moved, alerts, features)
    for name in spec.names:
        np.testing.assert_array_equal(shuffled[:, moved.names.index(name)], base[:, spec.names.index(name)])
    with pytest.raises(ValueError, match="do not match"):
        FeatureSpec.from_dict(stored)


def test_a_spec_fitted_on_masked_rows_equals_one_fitted_on_those_rows_alone(frames):
    alerts, features = frames
    keep_alerts, keep_features = np.array([True, False, True]), np.array([False, False, True])
    masked = fit_feature_spec(alerts, features, alert_rows=keep_alerts, feature_rows=keep_features)
    alone = fit_feature_spec(alerts[keep_alerts], features[keep_features])
    assert masked == alone and masked.names == alone.names
    assert "typology_type=fan_in" not in masked.names  # a2's category was left out
    assert masked.address_features == ("degree_in", "is_mixer_like")  # only 0xc: its velocity is NaN
