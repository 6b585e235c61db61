"""Investigators' decisions as labels, through the commands a user runs (fresh directory, real
engine): ``train --labels dispositions`` on ten synthetic days with a simulated team beats the
address-label-only model on held-out recall at the review capacity (``compare``, ground truth
the decisions where there are, address labels elsewhere); a decision made after the training
cut-off changes nothing in the trained model; ``dispositions import`` refuses a broken file
whole and takes a 0-row file."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.stream_harness import PYTHON, clean_env, cli, query

pytestmark = pytest.mark.integration
# A team that reviews a quarter of each day's alerts, and an address-label file covering 3 % of
# addresses (what intelligence feeds give): the regime in which decisions are most of the labels.
ALERTS_PER_DAY, CAPACITY, LABELLED_SHARE, SEED = 1000, 250, 0.03, 3
HELD = ("2025-01-08", "2025-01-10")
CUT_OFF = "2025-02-01T00:00:00Z"  # after every simulated decision


def env_home(env: dict) -> Path:
    return Path(env["AMLSCORE_HOME"])


def version_of(done: subprocess.CompletedProcess) -> str:
    return re.search(r"model version (\S+)", done.stdout).group(1)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    env = {**clean_env(root / "home"), "AMLSCORE_REVIEW_CAPACITY": str(CAPACITY)}
    cli(env, "synth", "--out", str(root / "sot"), "--days", "10", "--alerts-per-day",
        str(ALERTS_PER_DAY), "--labelled-share", str(LABELLED_SHARE), "--dispositions",
        "--seed", str(SEED))
    cli(env, "ingest", "--source", str(root / "sot"))
    imported = cli(env, "dispositions", "import", str(root / "sot" / "dispositions.parquet"))
    assert re.search(r"imported (\d+) decisions", imported.stdout).group(1) == str(10 * CAPACITY)
    return {"root": root, "env": env}


def train(env: dict, *args: str) -> str:
    return version_of(cli(env, "train", "--holdout-days", "3", "--no-promote", *args))


def test_decisions_as_labels_beat_address_labels_at_capacity(team):
    env = team["env"]
    addresses = train(env, "--labels", "addresses")
    decisions = train(env, "--labels", "dispositions")
    out = team["root"] / "compare"
    cli(env, "compare", "--against", addresses, "--version", decisions, "--start", HELD[0],
        "--end", HELD[1], "--out", str(out))
    report = orjson.loads((out / "compare.json").read_bytes())
    assert report["labels"]["dispositions"] > report["labels"]["addresses"] > 0
    before = report["capacity"]["champion"]["recall_at_capacity"]
    after = report["capacity"]["challenger"]["recall_at_capacity"]
    assert report["capacity"]["champion"]["review_capacity"] == CAPACITY
    assert after > before, (before, after)

    metadata = json.loads((team["root"] / "home" / "models" / decisions / "alert_scorer.json").read_text())
    labels = metadata["metrics"]["labels"]
    assert labels["use"] == "dispositions" and labels["training"]["addresses"] == 0
    assert labels["training"]["dispositions"] > 1000 and labels["held_out"]["dispositions"] > 500


def test_a_decision_after_the_cut_off_changes_nothing(team):
    env, root = team["env"], team["root"]
    before = train(env, "--labels", "dispositions", "--as-of", CUT_OFF)
    # Late decisions: every decided training alert decided again, the other way, a month later.
    history = pq.read_table(root / "sot" / "dispositions.parquet").to_pylist()
    late = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    flipped = [{**d, "decided_at": late, "analyst": "late-reviewer",
                "disposition": "false_positive" if d["disposition"] != "false_positive" else "true_positive",
                "sar_filed": False} for d in history if str(d["processing_date"]) < HELD[0]]
    path = root / "late.parquet"
    pq.write_table(pa.Table.from_pylist(flipped, schema=pq.read_schema(root / "sot" / "dispositions.parquet")), path)
    cli(env, "dispositions", "import", str(path))
    after = train(env, "--labels", "dispositions", "--as-of", CUT_OFF)
    now = train(env, "--labels", "dispositions")  # the late decisions are in range now

    models = root / "home" / "models"
    def fitted(version: str) -> dict[str, bytes]:
        return {name: (models / version / f"{name}.ubj").read_bytes() for name in ("alert_scorer", "alert_ranker")}
    def fingerprint(version: str) -> str:
        return json.loads((models / version / "alert_scorer.json").read_text())["data_fingerprint"]
    assert fitted(before) == fitted(after) and fingerprint(before) == fingerprint(after)
    assert fingerprint(now) != fingerprint(before) and fitted(now) != fitted(before)


def test_import_refuses_a_broken_file_whole_and_takes_an_empty_one(team, tmp_path):
    env = team["env"]
    rows = query(env_home(env), "SELECT count() AS n FROM amlscore.alert_dispositions")[0]["n"]
    csv = tmp_path / "decisions.csv"
    csv.write_text("alert_id,network,processing_date,window_days,disposition,analyst,decided_at,note,sar_filed\n"
                   "a-1,ethereum,2025-01-02,7,true_positive,dana,2025-01-03T10:00:00Z,,true\n"
                   "a-2,ethereum,2025-01-02,7,fraudulent,dana,2025-01-03T10:00:00Z,,\n"
                   "a-3,ethereum,2025-01-02,7,false_positive,,2025-01-03T10:00:00Z,,\n")
    done = subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", "dispositions", "import",
                           str(csv)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "row 2: disposition" in done.stderr and "row 3: analyst" in done.stderr, done.stderr
    assert query(env_home(env), "SELECT count() AS n FROM amlscore.alert_dispositions")[0]["n"] == rows

    empty = tmp_path / "none.parquet"
    pq.write_table(pa.table({c: pa.array([], pa.string()) for c in (
        "alert_id", "network", "processing_date", "window_days", "disposition", "analyst", "decided_at")}), empty)
    assert "imported 0 decisions" in cli(env, "dispositions", "import", str(empty)).stdout
    csv.write_text("alert_id,network,processing_date,window_days,disposition,analyst,decided_at,note,sar_filed\n"
                   "a-1,ethereum,2025-01-02,7,true_positive,dana,2025-01-03T10:00:00Z,,true\n")
    assert "imported 1 decisions" in cli(env, "dispositions", "import", str(csv)).stdout
    assert query(env_home(env), "SELECT sar_filed, note FROM amlscore.alert_dispositions "
                                "WHERE alert_id = 'a-1'") == [{"sar_filed": True, "note": ""}]
