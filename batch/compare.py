"""`amlscore compare`: champion (the promoted version) against a challenger on the alerts of a
range — labelled metrics, recall at the review capacity, score shift and rank agreement per
date — as JSON and a PNG. Ground truth is each alert's latest disposition made by ``labels``'s
as-of time where there is one, its address's label otherwise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from batch.capacity import queue_figures
from batch.dataset import Labels, load_training_data
from batch.evaluate import binary_metrics, ranking_metrics
from batch.report import NO_PLOTS, plt
from shared.clickhouse.raw_store import RawStore
from shared.errors import AmlScoreError
from shared.scoring import RiskScoring

TOP = 50


def _scores(scoring: RiskScoring, alerts, features) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    scored = scoring.score_matrix(alerts, scoring.alert_matrix(alerts, features))
    return scored["score"].to_numpy(), scored["rank_score"].to_numpy()


def _top_overlap(groups: np.ndarray, a: np.ndarray, b: np.ndarray, k: int = TOP) -> dict[str, float]:
    out = {}
    for group in sorted(set(groups.tolist())):
        rows = np.flatnonzero(groups == group)
        n = min(k, len(rows))
        top_a = set(rows[np.argsort(-a[rows], kind="stable")[:n]])
        top_b = set(rows[np.argsort(-b[rows], kind="stable")[:n]])
        out[group] = round(len(top_a & top_b) / n, 4) if n else None
    return out


def compare_versions(raw: RawStore, champion: RiskScoring, challenger: RiskScoring,
                     networks: Sequence[str], start: dt.date, end: dt.date, window_days: int,
                     out: Path, labels: Labels | None = None, review_capacity: int = 100) -> dict:
    data = load_training_data(raw, networks, start, end, window_days, labels)
    if not len(data.alerts):
        raise AmlScoreError(f"no alerts for {','.join(networks)} between {start} and {end}")
    alerts = data.alerts
    labels = alerts["label"].to_numpy()
    groups = (alerts["network"] + "/" + alerts["processing_date"]).to_numpy()
    scores = {"champion": _scores(champion, alerts, data.features),
              "challenger": _scores(challenger, alerts, data.features)}
    labelled = ~np.isnan(labels)
    report: dict = {
        "range": {"networks": list(networks), "start": start.isoformat(), "end": end.isoformat(),
                  "window_days": window_days},
        "champion": champion.model_version, "challenger": challenger.model_version,
        "alerts": int(len(alerts)), "labelled": int(labelled.sum()),
        "labels": {k: data.label_counts[k] for k in ("use", "as_of", "dispositions", "addresses")},
        "capacity": {name: queue_figures(alerts, s[1], labels, review_capacity)
                     for name, s in scores.items()},
        "metrics": {name: binary_metrics(labels[labelled], s[0][labelled]) for name, s in scores.items()},
        "ranking": ranking_metrics(groups[labelled], labels[labelled],
                                   {name: s[1][labelled] for name, s in scores.items()}),
    }
    shift = scores["challenger"][0] - scores["champion"][0]
    report["score_shift"] = {"mean": round(float(shift.mean()), 6),
                             "mean_abs": round(float(np.abs(shift).mean()), 6),
                             "p95_abs": round(float(np.quantile(np.abs(shift), 0.95)), 6)}
    overlap = _top_overlap(groups, scores["champion"][1], scores["challenger"][1])
    values = [v for v in overlap.values() if v is not None]
    report["rank_agreement"] = {f"top{TOP}_overlap_per_date": overlap,
                                f"top{TOP}_overlap_mean": round(float(np.mean(values)), 4) if values else None}
    out.mkdir(parents=True, exist_ok=True)
    if plt is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(scores["champion"][0], scores["challenger"][0], s=2, alpha=0.3)
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel=f"champion {champion.model_version}", ylabel=f"challenger {challenger.model_version}",
               title="alert scores, champion vs challenger")
        fig.tight_layout()
        fig.savefig(out / "compare.png", dpi=110)
        plt.close(fig)
        report["plot"] = "compare.png"
    else:
        report["plot_left_out"] = NO_PLOTS
    (out / "compare.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report
