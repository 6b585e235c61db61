import pytest

from shared.errors import ModelLoadError
from shared.registry import PROMOTED_FILE, DirectoryModelRegistry
from shared.scoring import ScoringPolicy
from stream.scoring.model_holder import ModelHolder


def _save(registry, bundle, version):
    for name in ("alert_scorer", "alert_ranker", "cluster_scorer"):
        model = getattr(bundle, name)
        registry.save(version, name, model.booster, model.metadata)


def test_startup_without_a_model_says_what_to_do(tmp_path):
    with pytest.raises(ModelLoadError, match="amlscore train"):
        ModelHolder(DirectoryModelRegistry(tmp_path), ScoringPolicy()).load_initial()


def test_swaps_to_a_promoted_version_and_refuses_a_broken_one(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    _save(registry, bundle, "v2")
    registry.promote("v1")
    holder = ModelHolder(registry, ScoringPolicy())
    before = holder.load_initial()
    assert holder.refresh() is None  # nothing new
    registry.promote("v2")
    assert holder.refresh() == "v2" and holder.scoring.model_version == "v2"
    assert before.model_version == "v1"  # a batch holding the old object is unaffected
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "alert_scorer.ubj").write_bytes(b"garbage")
    (tmp_path / PROMOTED_FILE).write_text('{"model_version": "v3"}')
    assert holder.refresh() is None
    assert holder.scoring.model_version == "v2" and holder.status.failed == 1
    assert holder.refresh() is None and holder.status.failed == 1  # refused once, not every poll
    (tmp_path / PROMOTED_FILE).write_text("{broken")
    assert holder.refresh() is None and holder.scoring.model_version == "v2"


def _break(directory, version):
    (directory / version / "alert_scorer.ubj").write_bytes(b"garbage")


def test_a_promoted_version_that_does_not_load_at_start_falls_back_to_the_last_that_does(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    for version in ("v1", "v2", "v3"):
        _save(registry, bundle, version)
        registry.promote(version)
    _break(tmp_path, "v3")
    _break(tmp_path, "v2")
    holder = ModelHolder(registry, ScoringPolicy())
    assert holder.load_initial().model_version == "v1"  # v3 wanted, v2 broken too
    assert holder.fallback["wanted"] == "v3" and holder.fallback["running"] == "v1"
    assert "checksum" in holder.fallback["why"] or "does not load" in holder.fallback["why"]


def test_when_no_version_loads_the_start_fails_saying_what_was_tried(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    registry.promote("v1")
    _break(tmp_path, "v1")
    with pytest.raises(ModelLoadError, match="tried v1"):
        ModelHolder(registry, ScoringPolicy()).load_initial()


def test_a_refused_version_is_tried_again_once_fixed_or_promoted_again(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    registry.promote("v1")
    holder = ModelHolder(registry, ScoringPolicy())
    holder.load_initial()
    _save(registry, bundle, "v2")
    registry.promote("v2")
    good = (tmp_path / "v2" / "alert_scorer.ubj").read_bytes()
    _break(tmp_path, "v2")
    assert holder.refresh() is None and holder.fallback["wanted"] == "v2"
    assert holder.refresh() is None and holder.status.failed == 1  # not retried every poll
    (tmp_path / "v2" / "alert_scorer.ubj").write_bytes(good)  # fixed in place
    assert holder.refresh() == "v2" and holder.fallback is None
    registry.promote("v1")
    assert holder.refresh() == "v1"
    registry.promote("v2")
    _break(tmp_path, "v2")
    assert holder.refresh() is None and holder.scoring.model_version == "v1"
    (tmp_path / "v2" / "alert_scorer.ubj").write_bytes(good)
    registry.promote("v2")  # the same version promoted again: tried again
    assert holder.refresh() == "v2"


def test_an_unreadable_model_file_is_a_model_load_error_not_a_crash(bundle, tmp_path, monkeypatch):
    import os
    from pathlib import Path
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    _save(registry, bundle, "v2")
    registry.promote("v1")
    holder = ModelHolder(registry, ScoringPolicy())
    holder.load_initial()
    registry.promote("v2")
    target = tmp_path / "v2" / "alert_ranker.ubj"
    if os.geteuid() == 0:  # root reads any mode: fail the read the way another user's would
        read_bytes = Path.read_bytes

        def denied(path):
            if path == target:
                raise PermissionError(13, "Permission denied", str(path))
            return read_bytes(path)
        monkeypatch.setattr(Path, "read_bytes", denied)
    else:
        target.chmod(0)
    assert holder.refresh() is None and "Permission denied" in holder.status.last_error
    assert holder.scoring.model_version == "v1"


def test_model_files_are_readable_by_other_users(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    registry.promote("v1")
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*(tmp_path / "v1").iterdir(), tmp_path / PROMOTED_FILE]}
    assert set(modes.values()) == {0o644}, modes


def test_promoting_the_challenger_ends_the_shadow_and_the_champion_is_never_its_own_challenger(bundle, tmp_path):
    registry = DirectoryModelRegistry(tmp_path)
    _save(registry, bundle, "v1")
    _save(registry, bundle, "v2")
    registry.promote("v1")
    registry.set_shadow("v2")
    holder = ModelHolder(registry, ScoringPolicy())
    holder.load_initial()
    assert holder.shadow.model_version == "v2"
    registry.promote("v2")
    assert registry.shadow_version() is None
    assert holder.refresh() == "v2" and holder.shadow is None
    (tmp_path / "SHADOW").write_text('{"model_version": "v2"}')  # written by hand, or an older release
    holder.refresh()
    assert holder.shadow is None
