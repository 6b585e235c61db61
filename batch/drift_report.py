"""`amlscore drift`: the ingested alerts of a range against the model's training reference,
feature by feature (PSI and missing share), as JSON and, with the report extra, a bar plot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import orjson

from batch.report import NO_PLOTS, plt
from shared.clickhouse.raw_store import RawStore
from shared.columns import normalise_keys
from shared.drift import DriftThresholds, compare
from shared.errors import AmlScoreError
from shared.features import ALERT_SCORING_COLUMNS
from shared.scoring import RiskScoring


def drift_report(raw: RawStore, scoring: RiskScoring, networks: Sequence[str], start: dt.date,
                 end: dt.date, window_days: int, thresholds: DriftThresholds, out: Path) -> dict:
    reference = scoring.bundle.alert_scorer.metadata.get("drift_reference")
    if reference is None:
        raise AmlScoreError(f"model {scoring.model_version} was trained without a drift reference; "
                            "train a new version (`amlscore train`) to get one")
    alerts = normalise_keys(raw.range_frame("raw_alerts", networks, start, end, window_days,
                                            columns=ALERT_SCORING_COLUMNS))
    if not len(alerts):
        raise AmlScoreError(f"no alerts for {','.join(networks)} between {start} and {end} "
                            f"(window {window_days})")
    features = normalise_keys(raw.range_frame("raw_features", networks, start, end, window_days))
    names = scoring.bundle.feature_spec.names
    report = {"model_version": scoring.model_version,
              "range": {"networks": list(networks), "start": start.isoformat(), "end": end.isoformat(),
                        "window_days": window_days},
              **compare(reference, scoring.alert_matrix(alerts, features), names, thresholds)}
    out.mkdir(parents=True, exist_ok=True)
    if plt is not None:
        _plot(report, thresholds, out / "drift.png")
        report["plot"] = "drift.png"
    else:
        report["plot_left_out"] = NO_PLOTS
    (out / "drift.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def worst(report: dict, n: int = 10) -> list[tuple[str, dict]]:
    scored = [(k, v) for k, v in report["features"].items() if v["psi"] is not None]
    return sorted(scored, key=lambda kv: (-kv[1]["psi"], kv[0]))[:n]


def _plot(report: dict, thresholds: DriftThresholds, path: Path, top: int = 25) -> None:
    rows = worst(report, top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.5))
    ax.barh([k for k, _ in rows][::-1], [v["psi"] for _, v in rows][::-1])
    ax.axvline(thresholds.watch, ls="--", color="orange", label=f"watch {thresholds.watch}")
    ax.axvline(thresholds.act, ls="--", color="red", label=f"act {thresholds.act}")
    ax.set(xlabel="PSI vs training", title=f"feature drift, {report['range']['start']}..{report['range']['end']}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
