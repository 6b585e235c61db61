"""The scoring model in use, and its hot reload.

The agent reads :attr:`ModelHolder.scoring` once per batch, so a swap lands between batches. A
new version is loaded completely before the (atomic) reference swap; one that fails to load is
refused and the old one kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import ModelLoadError
from shared.registry import ModelSource
from shared.scoring import RiskScoring, ScoringPolicy

log = logging.getLogger(__name__)


@dataclass
class ReloadStatus:
    loaded: int = 0
    failed: int = 0
    last_error: str = ""
    refused_version: str | None = None


class ModelHolder:
    def __init__(self, source: ModelSource, policy: ScoringPolicy) -> None:
        self.source = source
        self.policy = policy
        self._scoring: RiskScoring | None = None
        self.shadow: RiskScoring | None = None  # a challenger scoring beside the champion
        self.status = ReloadStatus()

    @property
    def scoring(self) -> RiskScoring:
        if self._scoring is None:
            raise ModelLoadError("no model loaded")
        return self._scoring

    @property
    def loaded(self) -> bool:
        return self._scoring is not None

    @property
    def networks(self) -> tuple[str, ...]:
        meta = self.scoring.bundle.alert_scorer.metadata
        return tuple(meta.get("training_range", {}).get("networks", ()))

    def load_initial(self) -> RiskScoring:
        """At startup: the promoted model or a ModelLoadError that says what to do."""
        version = self.source.current_version()
        if version is None:
            raise ModelLoadError(
                "no promoted model; run `amlscore train` first or set AMLSCORE_MODELS_DIR")
        self._scoring = RiskScoring(self.source.load(version), self.policy)
        self.status.loaded += 1
        self.refresh_shadow()
        return self._scoring

    def refresh_shadow(self) -> None:
        """Follow the shadow pointer; a challenger that fails to load is logged and left out
        (it never stops the champion)."""
        try:
            version = self.source.shadow_version()
            if version == (self.shadow.model_version if self.shadow else None):
                return
            self.shadow = RiskScoring(self.source.load(version), self.policy) if version else None
            log.info("challenger %s scoring in shadow", version) if version else log.info("no challenger")
        except ModelLoadError as exc:
            self.shadow = None
            log.error("challenger not loaded: %s", exc)

    def refresh(self) -> str | None:
        """Swap in a newly promoted version; return it, or None when nothing changed."""
        self.refresh_shadow()
        try:
            version = self.source.current_version()
        except ModelLoadError as exc:
            self._refuse(None, exc)
            return None
        current = self._scoring.model_version if self._scoring else None
        if version is None or version == current or version == self.status.refused_version:
            return None
        try:
            scoring = RiskScoring(self.source.load(version), self.policy)
        except ModelLoadError as exc:
            self._refuse(version, exc)
            return None
        self._scoring = scoring  # a single reference assignment: readers see old or new
        self.status.loaded += 1
        self.status.refused_version = None
        log.info("model %s loaded (was %s)", version, current)
        return version

    def _refuse(self, version: str | None, exc: Exception) -> None:
        self.status.failed += 1
        self.status.last_error = str(exc)
        self.status.refused_version = version
        log.error("model %s refused, keeping %s: %s", version,
                  self._scoring.model_version if self._scoring else None, exc)
