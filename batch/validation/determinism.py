"""Determinism: fresh processes score the validation alerts and must agree bit for bit.

Each child gets its settings as arguments (models directory, version, policy, the alerts as a
Parquet file written once by the parent), loads the version itself and returns a digest of what it
scored — scores, rank scores, risk levels, QC flags and explanations — and the memory the loaded
version took. ``runs`` children use the policy's predict thread count, one more uses another.
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

PARALLEL = 2  # children at once: the box's cores


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


def rescore(models_dir: str, version: str, policy: dict, alerts_path: str,
            features_path: str) -> tuple[str, float]:
    """In a fresh process: (digest of the scores, MB the loaded version added to this process)."""
    from shared.registry import DirectoryModelRegistry
    from shared.scoring import RiskScoring

    alerts, features = pd.read_parquet(alerts_path), pd.read_parquet(features_path)
    before = _rss_mb()
    bundle = DirectoryModelRegistry(Path(models_dir)).load(version)
    loaded = _rss_mb() - before
    scoring = RiskScoring(bundle, ScoringPolicy(**{**policy, "risk_bands": tuple(policy["risk_bands"])}))
    return digest(scoring.score_alerts(alerts, features)), loaded


def memory_of(models_dir: Path, version: str, policy: ScoringPolicy,
              alerts: pd.DataFrame, features: pd.DataFrame) -> float:
    """MB a fresh process takes to load ``version`` (scoring a handful of alerts with it)."""
    with tempfile.TemporaryDirectory(prefix="amlscore-validate-") as tmp:
        a, f = Path(tmp) / "alerts.parquet", Path(tmp) / "features.parquet"
        alerts.head(10).to_parquet(a)
        features.to_parquet(f)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(rescore, str(models_dir), version, dataclasses.asdict(policy),
                               str(a), str(f)).result()[1]


def determinism(models_dir: Path, version: str, policy: ScoringPolicy, alerts: pd.DataFrame,
                features: pd.DataFrame, in_process: str, runs: int = 3) -> tuple[Check, float]:
    """(the check, MB the loaded version takes in a fresh process)."""
    other_threads = 2 if policy.predict_threads == 1 else 1
    policies = [dataclasses.asdict(policy)] * runs + [
        dataclasses.asdict(dataclasses.replace(policy, predict_threads=other_threads))]
    with tempfile.TemporaryDirectory(prefix="amlscore-validate-") as tmp:
        a, f = Path(tmp) / "alerts.parquet", Path(tmp) / "features.parquet"
        alerts.to_parquet(a)
        features.to_parquet(f)
        with ProcessPoolExecutor(PARALLEL, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = [pool.submit(rescore, str(models_dir), version, p, str(a), str(f)) for p in policies]
            answers = [r.result() for r in results]
    digests = [d for d, _ in answers]
    same_threads = set(digests[:runs]) | {in_process}
    other = digests[runs]
    figures = {"fresh_processes": runs, "distinct_results": len(same_threads),
               "other_thread_count": other_threads, "other_threads_same": other == in_process,
               "digest": in_process[:16]}
    failed = []
    if len(same_threads) > 1:
        failed.append(f"{runs} fresh processes and this one gave {len(same_threads)} different results")
    if other != in_process:
        failed.append(f"scoring with {other_threads} predict threads gave another result")
    memory = float(np.nanmedian([m for _, m in answers]))
    return Check("determinism", not failed, figures,
                 {"distinct_results": 1, "other_threads_same": True}, "; ".join(failed)), memory
