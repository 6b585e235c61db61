"""Determinism: fresh processes score the validation alerts and must agree bit for bit.

Each child gets its settings as arguments (models directory, version, policy, the alerts as a
Parquet file written once by the parent), loads the version itself and returns a digest of what it
scored — scores, rank scores, risk levels, QC flags and explanations — and the memory the loaded
version took; each scores a second time with another predict thread count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from batch.validation.checks import Check
from shared.scoring import ScoringPolicy


def digest(frame: pd.DataFrame) -> str:
    """What a scorer produced, as one hash: equal only when bit for bit the same."""
    h = hashlib.sha256()
    for column in ("score", "rank_score"):
        h.update(np.ascontiguousarray(frame[column].to_numpy(dtype=np.float64)).tobytes())
    for column in ("risk_level", "qc_sample", "explanation", "alert_id"):
        h.update("\x1f".join(map(str, frame[column].tolist())).encode())
    return h.hexdigest()


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: memory is not measured
        return float("nan")


def rescore(models_dir: str, version: str, policy: dict, alerts_path: str, features_path: str,
            other_threads: int) -> tuple[str, str, float]:
    """In a fresh process: (digest of the scores, digest with ``other_threads`` predict threads,
    MB the loaded version added to this process)."""
    from shared.registry import DirectoryModelRegistry
    from shared.scoring import RiskScoring

    alerts, features = pd.read_parquet(alerts_path), pd.read_parquet(features_path)
    registry = DirectoryModelRegistry(Path(models_dir))
    before = _rss_mb()
    bundle = registry.load(version)
    loaded = _rss_mb() - before
    bands = tuple(policy["risk_bands"])
    scoring = RiskScoring(bundle, ScoringPolicy(**{**policy, "risk_bands": bands}))
    first = digest(scoring.score_alerts(alerts, features))
    other = RiskScoring(registry.load(version),
                        ScoringPolicy(**{**policy, "risk_bands": bands, "predict_threads": other_threads}))
    return first, digest(other.score_alerts(alerts, features)), loaded


def determinism(models_dir: Path, version: str, policy: ScoringPolicy, alerts: pd.DataFrame,
                features: pd.DataFrame, in_process: str, runs: int = 3,
                champion: str | None = None) -> tuple[Check, dict[str, float]]:
    """(the check, MB the loaded version — and the champion, if given — takes in a fresh
    process). All fresh processes run at once: the champion's only loads and scores 10 alerts."""
    other_threads = 2 if policy.predict_threads == 1 else 1
    settings = dataclasses.asdict(policy)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="amlscore-validate-") as tmp:
        a, f, few = (Path(tmp) / n for n in ("alerts.parquet", "features.parquet", "few.parquet"))
        alerts.to_parquet(a)
        features.to_parquet(f)
        alerts.head(10).to_parquet(few)
        with ProcessPoolExecutor(runs + bool(champion), mp_context=context) as pool:
            results = [pool.submit(rescore, str(models_dir), version, settings, str(a), str(f),
                                   other_threads) for _ in range(runs)]
            theirs = pool.submit(rescore, str(models_dir), champion, settings, str(few), str(f),
                                 other_threads) if champion else None
            answers = [r.result() for r in results]
            memory = {"candidate": float(np.nanmedian([m for _, _, m in answers]))}
            if theirs is not None:
                memory["champion"] = theirs.result()[2]
    same_threads = {d for d, _, _ in answers} | {in_process}
    others = {o for _, o, _ in answers}
    figures = {"fresh_processes": runs, "distinct_results": len(same_threads),
               "other_thread_count": other_threads, "other_threads_same": others == {in_process},
               "digest": in_process[:16]}
    failed = []
    if len(same_threads) > 1:
        failed.append(f"{runs} fresh processes and this one gave {len(same_threads)} different results")
    if others != {in_process}:
        failed.append(f"scoring with {other_threads} predict threads gave another result")
    return Check("determinism", not failed, figures,
                 {"distinct_results": 1, "other_threads_same": True}, "; ".join(failed)), memory
