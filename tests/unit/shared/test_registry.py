import pytest

from shared.errors import ModelLoadError
from shared.registry import DirectoryModelRegistry


def test_save_load_round_trip_keeps_feature_order(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        model = getattr(bundle, name)
        registry.save("v2", name, model.booster, model.metadata)
    loaded = registry.load("v2")
    assert loaded.feature_spec == bundle.feature_spec
    assert loaded.alert_scorer.feature_names == bundle.feature_spec.names
    assert loaded.alert_scorer.metadata["model_version"] == "v2"
    assert loaded.alert_scorer.metadata["artifact_sha256"]


def test_promotion_pointer(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    assert registry.current_version() is None
    with pytest.raises(ModelLoadError, match="amlscore train"):
        registry.load_current()
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        registry.save("v2", name, getattr(bundle, name).booster, getattr(bundle, name).metadata)
    registry.promote("v2")
    assert registry.current_version() == "v2"
    assert registry.versions() == ["v2"]


def test_corrupt_or_missing_artifacts_are_refused(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        registry.save("v2", name, getattr(bundle, name).booster, getattr(bundle, name).metadata)
    path = tmp_path / "v2" / "alert_ranker.ubj"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="checksum"):
        registry.load("v2")
    with pytest.raises(ModelLoadError, match="checksum"):
        registry.promote("v2")  # never point scorers at a broken version
    assert registry.current_version() is None
    (tmp_path / "v2" / "cluster_scorer.ubj").unlink()
    with pytest.raises(ModelLoadError, match="not found"):
        registry.load_model("v2", "cluster_scorer")
    with pytest.raises(ModelLoadError, match="invalid model version"):
        registry.load("../etc")


def test_metadata_must_match_the_model(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    meta = dict(bundle.alert_scorer.metadata)
    meta["feature_names"] = meta["feature_names"][:-1]
    registry.save("v3", "alert_scorer", bundle.alert_scorer.booster, meta)
    with pytest.raises(ModelLoadError, match="features"):
        registry.load_model("v3", "alert_scorer")
