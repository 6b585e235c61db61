"""List, promote and roll back model versions. The promoted pointer in the models directory is
what scorers follow (running workers pick a change up on their next model poll); the
``model_registry`` table mirrors it with exactly one promoted version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batch.validation.status import verdict
from shared.clickhouse.registry_store import RegistryStore
from shared.errors import ClickHouseUnavailable, ModelLoadError
from shared.registry import DirectoryModelRegistry


@dataclass(frozen=True)
class VersionSummary:
    version: str
    promoted: bool
    training_range: str
    auc: float | None
    ndcg: float | None
    rank_source: str
    clusters: str   # "scored" or why not
    validation: str  # passed, failed, not validated, stale; "forced" when promoted past it


def list_versions(registry: DirectoryModelRegistry) -> list[VersionSummary]:
    current = registry.current_version()
    forced = registry.promoted_forced()
    out = []
    for version in registry.versions():
        try:
            meta = registry.metadata(version)
        except ModelLoadError:
            continue
        span = meta.get("training_range", {})
        metrics = meta.get("metrics", {})
        rank = metrics.get("rank_score", {}).get("source", "ranker")
        ndcg = metrics.get("ranking", {}).get("mean", {}).get(
            "ranker_ndcg@10" if rank == "ranker" else "classifier_baseline_ndcg@10")
        out.append(VersionSummary(
            version, version == current,
            f"{','.join(span.get('networks', []))} {span.get('start')}..{span.get('end')} "
            f"w{span.get('window_days')}",
            metrics.get("alert_scorer", {}).get("auc"), ndcg, rank,
            "scored" if not meta.get("cluster_scorer_skipped") else "not scored",
            _validation(registry, version, forced and version == current)))
    return out


def _validation(registry: DirectoryModelRegistry, version: str, forced: bool) -> str:
    status = verdict(registry, version)[0]
    return f"{status}, promoted forced" if forced and status != "passed" else status


def require_known(registry: DirectoryModelRegistry, version: str) -> None:
    if version not in registry.versions():
        known = ", ".join(registry.versions()[-5:]) or "none yet"
        raise ModelLoadError(f"no model version {version!r}; known: {known} (see `amlscore models`)")


def promote(registry: DirectoryModelRegistry, table: Callable[[], RegistryStore],
            version: str, forced: bool = False) -> str | None:
    """Move the pointer (what scorers follow), then mirror it in ``model_registry``; returns why
    the table could not be updated, if it could not (e.g. a worker holds the embedded engine)."""
    require_known(registry, version)
    registry.promote(version, forced=forced)
    return _mirror(table, version)


def rollback(registry: DirectoryModelRegistry, table: Callable[[], RegistryStore]) -> tuple[str, str | None]:
    version = registry.rollback()
    return version, _mirror(table, version)


def _mirror(table: Callable[[], RegistryStore], version: str) -> str | None:
    try:
        table().mark_promoted(version)
    except ClickHouseUnavailable as exc:
        return str(exc)
    return None
