"""The scoring model in use, and its hot reload.

The agent reads :attr:`ModelHolder.scoring` once per batch, so a swap lands between batches. A
new version is loaded completely before the (atomic) reference swap.

No deploy stops the worker. The promoted version is the one *wanted*; when it does not load
(missing or corrupt files, files this user may not read), the worker runs the newest version of
the promotion history that does — at start as on a reload — and says so (:class:`ReloadStatus`,
``/ready``, the ``amlscore_model_fallback`` gauge). A refused version is tried again as soon as
its files change or it is promoted again (its fingerprint), not on every poll. Only when no
version at all can be loaded does the start fail. The challenger is never the champion: a
shadow pointer naming the version in use is ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import ModelLoadError
from shared.registry import ModelSource, challenger_of
from shared.scoring import RiskScoring, ScoringPolicy

log = logging.getLogger(__name__)


@dataclass
class ReloadStatus:
    failed: int = 0
    last_error: str = ""
    wanted: str | None = None                 # the promoted version
    refused: tuple[str, str] | None = None    # (version, fingerprint) that did not load

    def fallback(self, running: str | None) -> dict[str, str] | None:
        if self.wanted is None or self.wanted == running:
            return None
        return {"wanted": self.wanted, "running": running or "", "why": self.last_error}


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
    def networks(self) -> tuple[str, ...]:
        meta = self.scoring.bundle.alert_scorer.metadata
        return tuple(meta.get("training_range", {}).get("networks", ()))

    @property
    def fallback(self) -> dict[str, str] | None:
        return self.status.fallback(self._scoring.model_version if self._scoring else None)

    def _load(self, version: str) -> RiskScoring:
        return RiskScoring(self.source.load(version), self.policy)

    def load_initial(self) -> RiskScoring:
        """At startup: the promoted model, else the newest loadable one promoted before it;
        a ModelLoadError that says what to do when there is none."""
        version = self.source.current_version()
        if version is None:
            raise ModelLoadError(
                "no promoted model; run `amlscore train` first or set AMLSCORE_MODELS_DIR")
        self.status.wanted = version
        try:
            self._scoring = self._load(version)
        except ModelLoadError as exc:
            self._refuse(version, exc)
            self._scoring = self._fall_back(exc)
        self.refresh_shadow()
        return self._scoring

    def _fall_back(self, cause: ModelLoadError) -> RiskScoring:
        tried = [self.status.wanted]
        for version in reversed(self.source.promotion_history()):
            if version in tried:
                continue
            tried.append(version)
            try:
                scoring = self._load(version)
            except ModelLoadError as exc:
                log.error("model %s (promoted before) does not load either: %s", version, exc)
                continue
            log.error("promoted model %s does not load (%s): running %s, the last promoted "
                      "version that does", self.status.wanted, cause, version)
            return scoring
        raise ModelLoadError(f"no model version loads (tried {', '.join(map(str, tried))}): {cause}")

    def refresh_shadow(self) -> None:
        """Follow the shadow pointer; a challenger that fails to load is logged and left out
        (it never stops the champion), and the champion is never its own challenger."""
        try:
            version = challenger_of(self.source, self._scoring.model_version if self._scoring else None)
            if version == (self.shadow.model_version if self.shadow else None):
                return
            self.shadow = self._load(version) if version else None
            log.info("challenger %s scoring in shadow", version) if version else log.info("no challenger")
        except ModelLoadError as exc:
            self.shadow = None
            log.error("challenger not loaded: %s", exc)

    def refresh(self) -> str | None:
        """Swap in the promoted version when it changed (or changed files after a refusal);
        return the version swapped in, or None. Then follow the shadow pointer."""
        swapped = self._refresh_champion()
        self.refresh_shadow()
        return swapped

    def _refresh_champion(self) -> str | None:
        try:
            version = self.source.current_version()
            if version is None:
                return None
            self.status.wanted = version
            current = self._scoring.model_version if self._scoring else None
            if version == current:
                return None
            fingerprint = self.source.fingerprint(version)
            if self.status.refused == (version, fingerprint):
                return None  # refused as it is; tried again once its files or pointer change
            scoring = self._load(version)
        except ModelLoadError as exc:
            self._refuse(self.status.wanted, exc)
            return None
        self._scoring = scoring  # a single reference assignment: readers see old or new
        self.status.refused = None
        log.info("model %s loaded (was %s)", version, current)
        return version

    def _refuse(self, version: str | None, exc: Exception) -> None:
        if version is not None:
            self.status.refused = (version, self._fingerprint(version))
        self.status.failed += 1
        self.status.last_error = str(exc)
        log.error("model %s refused, keeping %s: %s", version,
                  self._scoring.model_version if self._scoring else None, exc)

    def _fingerprint(self, version: str) -> str:
        try:
            return self.source.fingerprint(version)
        except (ModelLoadError, OSError):
            return ""
