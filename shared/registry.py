"""Model artifacts on disk: one directory per model version holding the three models.

Layout: ``{models_dir}/{version}/{name}.ubj`` (XGBoost UBJSON) and ``{name}.json`` (metadata:
feature names in order, training range, metrics, data fingerprint, the artifact's sha256).
``{models_dir}/PROMOTED`` names the version that scorers load; it is replaced atomically, so a
reader sees the old or the new pointer, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson
import xgboost as xgb

from shared.cluster_features import ClusterFeatureSpec
from shared.errors import ModelLoadError
from shared.features import FeatureSpec

MODEL_NAMES = ("alert_scorer", "alert_ranker", "cluster_scorer")
PROMOTED_FILE = "PROMOTED"
SHADOW_FILE = "SHADOW"  # the challenger scoring beside the promoted version, if any
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TrainedModel:
    name: str
    booster: xgb.Booster
    metadata: dict

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["feature_names"])


@dataclass(frozen=True)
class ModelBundle:
    """The three models of one version, with the specs their inputs are built by."""

    version: str
    alert_scorer: TrainedModel
    alert_ranker: TrainedModel
    cluster_scorer: TrainedModel | None  # None: trained on data without clusters (see cluster_skipped)
    feature_spec: FeatureSpec
    cluster_spec: ClusterFeatureSpec | None
    cluster_skipped: str | None = None   # why this version has no cluster_scorer


class ModelSource(Protocol):
    """Where scorers get models from; swappable (directory, object store, …)."""

    def current_version(self) -> str | None: ...

    def promotion_history(self) -> list[str]:
        """Versions promoted before the current one, oldest first."""

    def fingerprint(self, version: str) -> str:
        """Changes whenever the version's files change or it is promoted again."""

    def shadow_version(self) -> str | None: ...

    def load(self, version: str) -> ModelBundle: ...


def challenger_of(source: ModelSource, champion: str | None) -> str | None:
    """The version scoring in shadow beside ``champion``: the shadow pointer's, unless it names
    the champion itself (a version is never its own challenger)."""
    version = source.shadow_version()
    return None if version is None or version == champion else version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


FILE_MODE = 0o644  # workers often run as another user than training: readable by all, writable by one


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DirectoryModelRegistry:
    """A :class:`ModelSource` backed by a directory (a local disk or a shared volume)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    def version_dir(self, version: str) -> Path:
        if not _VERSION.match(version):
            raise ModelLoadError(f"invalid model version {version!r}")
        return self.models_dir / version

    def save(self, version: str, name: str, booster: xgb.Booster, metadata: dict) -> Path:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model name {name!r}")
        directory = self.version_dir(version)
        directory.mkdir(parents=True, exist_ok=True)
        model_path = directory / f"{name}.ubj"
        _atomic_write(model_path, bytes(booster.save_raw(raw_format="ubj")))
        full = {**metadata, "model_name": name, "model_version": version,
                "artifact": model_path.name, "artifact_sha256": _sha256(model_path),
                "xgboost_version": xgb.__version__}
        _atomic_write(directory / f"{name}.json", orjson.dumps(full, option=orjson.OPT_INDENT_2))
        return model_path

    def promote(self, version: str, forced: bool = False) -> None:
        """Point scorers at ``version`` (running workers pick it up on their next model poll);
        the version it replaces is remembered for :meth:`rollback`. Promoting the promoted
        version again rewrites the pointer, which tells workers that refused it to try again
        (e.g. after its files were fixed). Promoting the challenger ends the shadow. ``forced``:
        promoted past its validation, which the pointer records for the audit."""
        self.load(version)  # refuse to point scorers at something that does not load
        current, history = self._pointer()
        if current is not None and current != version:
            history = [*history, current]
        self._write_pointer(version, history, forced)
        if self.shadow_version() == version:
            (self.models_dir / SHADOW_FILE).unlink(missing_ok=True)

    def _write_pointer(self, version: str, history: list[str], forced: bool = False) -> None:
        _atomic_write(self.models_dir / PROMOTED_FILE, orjson.dumps(
            {"model_version": version, "history": history[-50:], "promoted_at": time.time_ns(),
             "forced": forced}))

    def promoted_forced(self) -> bool:
        """Whether the promoted version was promoted with --force (past its validation)."""
        try:
            return bool(orjson.loads((self.models_dir / PROMOTED_FILE).read_bytes()).get("forced"))
        except (OSError, orjson.JSONDecodeError, AttributeError):
            return False

    def rollback(self) -> str:
        """Promote again the version that was promoted before the current one."""
        current, history = self._pointer()
        if current is None:
            raise ModelLoadError("nothing to roll back: no version has been promoted yet")
        while history:
            previous = history.pop()
            if previous != current and previous in self.versions():
                self.load(previous)
                self._write_pointer(previous, history)
                if self.shadow_version() == previous:
                    (self.models_dir / SHADOW_FILE).unlink(missing_ok=True)
                return previous
        raise ModelLoadError(f"nothing to roll back to: no version was promoted before {current}")

    def _pointer(self) -> tuple[str | None, list[str]]:
        pointer = self.models_dir / PROMOTED_FILE
        try:
            data = orjson.loads(pointer.read_bytes())
            return str(data["model_version"]), [str(v) for v in data.get("history", [])]
        except FileNotFoundError:
            return None, []
        except OSError as exc:
            raise ModelLoadError(f"cannot read {pointer}: {exc.strerror or exc}") from exc
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{pointer} is unreadable ({exc}); re-run `amlscore train`") from exc

    def current_version(self) -> str | None:
        return self._pointer()[0]

    def promotion_history(self) -> list[str]:
        return self._pointer()[1]

    def fingerprint(self, version: str) -> str:
        parts = []
        for path in sorted([self.models_dir / PROMOTED_FILE, *self.version_dir(version).glob("*")]):
            try:
                stat = path.stat()
            except OSError:
                continue
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_mode:o}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def shadow_version(self) -> str | None:
        try:
            return str(orjson.loads((self.models_dir / SHADOW_FILE).read_bytes())["model_version"])
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{self.models_dir / SHADOW_FILE} is unreadable ({exc}); "
                                 "run `amlscore shadow --off`") from exc

    def set_shadow(self, version: str | None) -> None:
        """A registered version that is not the promoted one scores beside it (None: stop)."""
        pointer = self.models_dir / SHADOW_FILE
        if version is None:
            pointer.unlink(missing_ok=True)
            return
        if version not in self.versions():
            raise ModelLoadError(f"no model version {version!r} (see `amlscore models`)")
        if version == self.current_version():
            raise ModelLoadError(f"{version} is the promoted version; a challenger must be another one")
        self.load(version)
        _atomic_write(pointer, orjson.dumps({"model_version": version}))

    def metadata(self, version: str) -> dict:
        """The alert_scorer's metadata of ``version`` (training range, metrics, …)."""
        path = self.version_dir(version) / "alert_scorer.json"
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ModelLoadError(f"model version {version} has no readable {path.name}: {exc}") from exc

    def versions(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir()
                      if p.is_dir() and (p / "alert_scorer.json").exists())

    def load_model(self, version: str, name: str) -> TrainedModel:
        directory = self.version_dir(version)
        meta_path, model_path = directory / f"{name}.json", directory / f"{name}.ubj"
        if not meta_path.exists() or not model_path.exists():
            raise ModelLoadError(
                f"model {name} of version {version} not found in {directory}; "
                "run `amlscore train` or point AMLSCORE_MODELS_DIR at the models"
            )
        try:
            metadata = orjson.loads(meta_path.read_bytes())
            checksum = _sha256(model_path)
            artifact = model_path.read_bytes()
        except orjson.JSONDecodeError as exc:
            raise ModelLoadError(f"{meta_path} is not valid JSON: {exc}") from exc
        except OSError as exc:  # e.g. written by another user with a mode this one cannot read
            raise ModelLoadError(f"cannot read {exc.filename or directory}: "
                                 f"{exc.strerror or exc}") from exc
        if metadata.get("artifact_sha256") != checksum:
            raise ModelLoadError(f"{model_path} does not match the checksum in {meta_path.name}")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(artifact))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"{model_path} does not load: {exc}") from exc
        if booster.num_features() != len(metadata.get("feature_names", [])):
            raise ModelLoadError(
                f"{model_path} has {booster.num_features()} features but its metadata lists "
                f"{len(metadata.get('feature_names', []))}"
            )
        return TrainedModel(name, booster, metadata)

    def load(self, version: str) -> ModelBundle:
        scorer = self.load_model(version, "alert_scorer")
        skipped = scorer.metadata.get("cluster_scorer_skipped")
        models = {"alert_scorer": scorer, "alert_ranker": self.load_model(version, "alert_ranker")}
        if not skipped:
            models["cluster_scorer"] = self.load_model(version, "cluster_scorer")
        try:
            feature_spec = FeatureSpec.from_dict(scorer.metadata["feature_spec"])
            cluster_spec = None if skipped else ClusterFeatureSpec.from_dict(
                models["cluster_scorer"].metadata["cluster_spec"])
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(f"model version {version} has an invalid feature spec: {exc}") from exc
        for name in ("alert_scorer", "alert_ranker"):
            if models[name].feature_names != feature_spec.names:
                raise ModelLoadError(f"{name} of {version} was not trained on its feature spec")
        if cluster_spec is not None and models["cluster_scorer"].feature_names != cluster_spec.names:
            raise ModelLoadError(f"cluster_scorer of {version} was not trained on its cluster spec")
        return ModelBundle(version, models["alert_scorer"], models["alert_ranker"],
                           models.get("cluster_scorer"), feature_spec, cluster_spec, skipped)

    def load_current(self) -> ModelBundle:
        version = self.current_version()
        if version is None:
            raise ModelLoadError(
                f"no promoted model in {self.models_dir}; run `amlscore train` first "
                "or set AMLSCORE_MODELS_DIR to a directory that holds one"
            )
        return self.load(version)
