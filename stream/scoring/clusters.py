"""The cluster processor: clusters are scored from their member alerts, read back from
``raw_alerts`` (where the alert processor wrote them) with their address features. Clusters are
few beside alerts, so this path works on DataFrames."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from shared.cluster_features import member_table
from shared.pandas_gate import load_pandas
from stream.boundary import Reason, ScoringOutcome, ScoringRequest
from stream.scoring.alerts import StreamConfig, dead_letters_for
from stream.scoring.decode import Decoded, decode_clusters
from stream.scoring.model_holder import ModelHolder
from stream.scoring.phases import PhaseTimer, unavailable
from stream.scoring.sinks import StreamSink, write_isolating

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class MemberSource(Protocol):
    def alerts_by_id(self, network: str, processing_date: dt.date, window_days: int,
                     alert_ids: Sequence[str]) -> pd.DataFrame: ...

    def features(self, network: str, processing_date: dt.date, window_days: int,
                 addresses: Sequence[str] | None = None) -> pd.DataFrame: ...


class ClusterProcessor:
    """Clusters are scored from their member alerts. Members still in flight are waited for by
    the caller (``request.final`` False: nothing is written and ``members_pending`` comes back);
    after the wait, a cluster is scored with the members there are, and one none of whose
    members ever came is dead-lettered (``members_missing``)."""

    def __init__(self, holder: ModelHolder, members: MemberSource, sink: StreamSink,
                 config: StreamConfig) -> None:
        self.holder, self.members, self.sink, self.config = holder, members, sink, config
        self._said_unscored: str | None = None  # the version we last said leaves clusters unscored
        self._schema_problems = getattr(sink, "schema_problems", None)  # optional for a custom sink

    def _members(self, group: pd.DataFrame, key: tuple) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The member alerts found, how many of each cluster's were found, and how many it has."""
        network, date, window = key
        members = member_table(group)
        wanted = sorted(set(members.ids))
        found = unavailable("member lookup", self.members.alerts_by_id, network, date, window, wanted)
        present = set(found["alert_id"].astype(str)) if "alert_id" in found else set()
        arrived = np.fromiter((m in present for m in members.ids), dtype=bool, count=len(members.ids))
        return found, np.bincount(members.owner[arrived], minlength=len(group)), members.counts()

    def process(self, request: ScoringRequest) -> ScoringOutcome:
        timer = PhaseTimer()
        scoring = self.holder.scoring
        networks = self.config.networks or self.holder.networks or None
        with timer("decode"):
            decoded: Decoded = decode_clusters(request.batch, networks, self.config.max_message_bytes)
        outcome = ScoringOutcome("cluster", model_version=scoring.model_version)
        dead = list(decoded.dead)
        if decoded.events and not scoring.scores_clusters:
            # A version trained on data without clusters: valid clusters are not dead-lettered
            # (nothing is wrong with them) but kept whole in unscored_clusters with the reason,
            # so that nothing acknowledged lives only in Kafka; said once per version.
            if self._said_unscored != scoring.model_version:
                self._said_unscored = scoring.model_version
                log.warning("model %s has no cluster_scorer (%s): clusters are stored unscored",
                            scoring.model_version, scoring.bundle.cluster_skipped)
            pd = load_pandas()  # the cluster path works on frames (clusters are few)

            clusters = pd.DataFrame([e.model_dump() for e in decoded.events])
            reason = f"model {scoring.model_version} has no cluster_scorer: {scoring.bundle.cluster_skipped}"
            with timer("write"):
                rejected = write_isolating(lambda rows: self.sink.write_unscored_clusters(
                    clusters if len(rows) == len(clusters) else clusters.iloc[rows],
                    scoring.model_version, reason, dt.datetime.now(dt.UTC)), len(clusters),
                    self._schema_problems)
            dead += [decoded.dead_letter(request.batch, i, Reason.SINK_REJECTED, e)
                     for i, e in rejected.items()]
            outcome.unscored = len(clusters) - len(rejected)
        elif decoded.events:
            pd = load_pandas()

            clusters = pd.DataFrame([e.model_dump() for e in decoded.events])
            groups = clusters.groupby(["network", "processing_date", "window_days"], sort=True).groups
            parts = []
            for key, rows in groups.items():
                group = clusters.loc[rows]
                with timer("lookup"):
                    alerts, found, expected = self._members(group, key)
                if not request.final and (found < expected).any():
                    return ScoringOutcome("cluster", members_pending=True, phases=timer.phases)
                none = [i for i, f in zip(rows, found, strict=True) if f == 0]
                dead += [decoded.dead_letter(request.batch, i, Reason.MEMBERS_MISSING,
                                             "none of the cluster's member alerts arrived")
                         for i in none]
                group = group.drop(index=none)
                if len(group):
                    with timer("predict"):
                        addresses = sorted(set(alerts["address"].astype(str)))
                        features = unavailable("member features", self.members.features,
                                               *key, addresses)
                        parts.append((group.index, scoring.score_clusters_from_alerts(
                            group, alerts, features)))
            if parts:
                index = np.concatenate([i for i, _ in parts])
                scores = pd.concat([s for _, s in parts], ignore_index=True)
                scored_at = dt.datetime.now(dt.UTC)
                with timer("write"):
                    rejected = write_isolating(lambda rows: self.sink.write_clusters(
                        scores if len(rows) == len(scores) else scores.iloc[rows], scored_at),
                        len(scores), self._schema_problems)
                dead += [decoded.dead_letter(request.batch, int(index[i]), Reason.SINK_REJECTED, e)
                         for i, e in rejected.items()]
                outcome.scored = len(scores) - len(rejected)
        outcome.dead = dead_letters_for(dead, request.partitions.get(self.config.dlq_topic, 1))
        outcome.phases = timer.phases
        return outcome

