"""The demo's closing of the loop: investigators work the live day's queue from the running
worker (``GET /queue``, ``POST /alerts/{id}/disposition``, each decided from the generator's
truth, as the simulated team decides the history), their earlier decisions are imported, the
models are retrained with them, and both versions are measured on the same held-out dates
against the same ground truth (decisions where there are, address labels elsewhere)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from batch.sot_layout import TRUTH_FILE, batch_path


@dataclass
class LoopSummary:
    posted: int = 0                  # decisions posted on the live queue through the API
    queue_left: int = 0              # undecided alerts of the live day after them
    imported: int = 0                # decisions of earlier days, imported
    retrained: str = ""              # the version trained with the decisions (a candidate)
    compared: dict = field(default_factory=dict)   # compare.json of before vs after
    truth_recall: dict = field(default_factory=dict)  # version → recall at capacity, generator's truth
    retrain_output: str = ""


def api(port: int, token: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=None if body is None else orjson.dumps(body),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local worker
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


def work_the_queue(port: int, token: str, sot: Path, day: dt.date, count: int) -> tuple[int, int]:
    """Decide the top ``count`` undecided alerts of the day; (decisions posted, alerts left)."""
    truth = pq.read_table(Path(batch_path(str(sot), "ethereum", day, 7)) / TRUTH_FILE).to_pydict()
    illicit = dict(zip(truth["alert_id"], truth["illicit"], strict=True))
    status, queue = api(port, token, f"/queue?network=ethereum&date={day}&limit={count}")
    if status != 200:
        raise RuntimeError(f"GET /queue answered {status}: {queue}")
    posted = 0
    for item in queue["items"]:
        bad = illicit[item["alert_id"]]
        body = {"network": "ethereum", "processing_date": day.isoformat(), "window_days": 7,
                "disposition": "true_positive" if bad else "false_positive", "sar_filed": bool(bad),
                "note": "demo: decided from the generator's truth"}
        status, answer = api(port, token, f"/alerts/{item['alert_id']}/disposition", body)
        if status != 201:
            raise RuntimeError(f"POST a decision answered {status}: {answer}")
        posted += 1
    status, after = api(port, token, f"/queue?network=ethereum&date={day}&limit=1")
    return posted, int(after.get("total", 0))


def retrain_and_compare(amlscore: Callable[..., str], home: Path, sot: Path, history: Path,
                        before: str, start: dt.date, live_day: dt.date, summary: LoopSummary) -> None:
    """Import the history and retrain over the same training dates as ``before`` (a candidate:
    the promoted version stays), so that the labels are all that differs; then compare both on
    ``before``'s held-out dates. The live day is left out of the comparison: its decisions were
    made on ``before``'s own queue, and a model's own queue, decided, favours that model."""
    out = amlscore("dispositions", "import", str(history))
    summary.imported = int(out.split("imported ", 1)[1].split()[0])
    summary.retrain_output = amlscore("train", "--holdout-days", "3", "--end", live_day.isoformat(),
                                      "--start", start.isoformat(), "--no-promote")
    summary.retrained = summary.retrain_output.split("model version ", 1)[1].split()[0]
    metadata = json.loads((home / "models" / before / "alert_scorer.json").read_text())
    dates = metadata["training_range"]["holdout_dates"]
    report = home / "compare" / f"{before}_vs_{summary.retrained}"
    amlscore("compare", "--against", before, "--version", summary.retrained,
             "--start", min(dates), "--end", max(dates), "--out", str(report))
    summary.compared = orjson.loads((report / "compare.json").read_bytes())
    summary.truth_recall = recall_against_truth(home, sot, [before, summary.retrained], dates,
                                                summary.compared["capacity"]["champion"]["review_capacity"])


def recall_against_truth(home: Path, sot: Path, versions: list[str], dates: list[str],
                         capacity: int) -> dict[str, float]:
    """Recall at capacity against the generator's truth: every illicit alert of the dates,
    decided or not (what only synthetic data can tell)."""
    from batch.capacity import queue_figures
    from batch.dataset import load_training_data
    from shared.context import Context
    from shared.settings import Settings

    context = Context(Settings(home=home))
    data = load_training_data(context.raw, ["ethereum"], dt.date.fromisoformat(min(dates)),
                              dt.date.fromisoformat(max(dates)), 7)
    illicit: dict[str, bool] = {}
    for day in dates:
        truth = pq.read_table(Path(batch_path(str(sot), "ethereum", dt.date.fromisoformat(day), 7))
                              / TRUTH_FILE).to_pydict()
        illicit.update(zip(truth["alert_id"], truth["illicit"], strict=True))
    alerts = data.alerts
    labels = alerts["alert_id"].map(illicit).astype(float).to_numpy()
    recall = {}
    for version in versions:
        scoring = context.scoring(version)
        scored = scoring.score_matrix(alerts, scoring.alert_matrix(alerts, data.features))
        recall[version] = queue_figures(alerts, scored["rank_score"].to_numpy(), labels,
                                        capacity)["recall_at_capacity"]
    return recall
