"""`amlscore validate` and the promotion gate on the real engine, run as a user would (the CLI in
a subprocess): a good candidate passes and writes its report; a constant model fails behaviour; a
scorer made non-deterministic fails determinism; a model trained on a fraction of the dates fails
the champion comparison, `promote` refuses it and `--force` records that it was forced; a
validated version promotes while another process holds the embedded engine, an unvalidated one
says in one line how to validate it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest
import xgboost as xgb

from shared.registry import DirectoryModelRegistry
from tests.stream_harness import PYTHON, clean_env, cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", "from amlscore.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def _version(done: subprocess.CompletedProcess) -> str:
    return re.search(r"model version (\S+)", done.stdout).group(1)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Ingested SOT of 8 days and a promoted champion (validated by its own train)."""
    root = tmp_path_factory.mktemp("validation")
    env = clean_env(root / "home")
    cli(env, "synth", "--out", str(root / "sot"), "--days", "8", "--alerts-per-day", "2500", "--seed", "11")
    cli(env, "ingest", "--source", str(root / "sot"))
    trained = cli(env, "train", "--holdout-days", "2")
    assert "[pass] integrity" in trained.stdout and "(promoted)" in trained.stdout
    return {"env": env, "home": root / "home", "champion": _version(trained)}


def test_a_good_candidate_passes_and_its_report_is_written(home):
    env = home["env"]
    candidate = _version(cli(env, "train", "--holdout-days", "2", "--seed", "5", "--no-promote"))
    done = _run(env, "validate", candidate)
    assert done.returncode == 0 and f"{candidate} passed validation" in done.stdout, done.stdout + done.stderr
    report_dir = home["home"] / "models" / candidate / "report"
    report = orjson.loads((report_dir / "validation.json").read_bytes())
    assert report["passed"] and report["champion"] == home["champion"]
    assert set(report["checks"]) == {"integrity", "determinism", "behaviour", "ground_truth",
                                     "performance", "serving"}
    assert report["checks"]["determinism"]["figures"]["distinct_results"] == 1
    assert report["checks"]["serving"]["figures"]["days"] == 2
    assert set(report["capacity"]) == {"candidate", "champion"}
    assert len(report["capacity"]["candidate"]["overall"]["curve"]) == 20
    assert "PASSED" in (report_dir / "validation.txt").read_text()
    assert (report_dir / "validation_recall_at_capacity.png").stat().st_size > 0
    models = cli(env, "models").stdout
    assert re.search(rf"{candidate}.*passed", models)


def _constant_version(home: Path, source: str) -> str:
    """A copy of ``source`` whose alert scorer answers the same score for every alert."""
    registry = DirectoryModelRegistry(home / "models")
    bundle = registry.load(source)
    names = list(bundle.feature_spec.names)
    x = np.zeros((20, len(names)), dtype=np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(x, label=np.tile([0.0, 1.0], 10), feature_names=names), 5)
    version = "constant-model"
    kept = ("artifact", "artifact_sha256", "model_name", "model_version", "xgboost_version")
    for model in (bundle.alert_scorer, bundle.alert_ranker, bundle.cluster_scorer):
        if model is None:
            continue
        meta = {k: v for k, v in model.metadata.items() if k not in kept}
        if model.name == "alert_ranker":
            meta["rank_source"] = "classifier"
        registry.save(version, model.name, booster if model.name == "alert_scorer" else model.booster, meta)
    return version


def test_a_constant_model_fails_behaviour_and_is_not_promoted(home):
    env = home["env"]
    version = _constant_version(home["home"], home["champion"])
    done = _run(env, "validate", version)
    assert done.returncode == 1
    line, = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "behaviour" in line and "constant model" in line
    refused = _run(env, "promote", version)
    assert refused.returncode == 1 and "failed validation" in refused.stderr
    assert DirectoryModelRegistry(home["home"] / "models").current_version() == home["champion"]


def test_a_nondeterministic_scorer_fails_determinism(home, tmp_path):
    # Every Python process of this environment (the CLI and the check's fresh processes) loads a
    # scorer whose scores carry a little noise of their own.
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "import numpy as np\n"
        "import shared.scoring as scoring\n"
        "_predict = scoring.RiskScoring._predict\n"
        "def _noisy(self, booster, matrix):\n"
        "    out = _predict(self, booster, matrix)\n"
        "    noise = np.frombuffer(os.urandom(8 * len(out)), dtype=np.uint64) / 2.0**64\n"
        "    return out * (1 - 1e-9 * noise)\n"
        "scoring.RiskScoring._predict = _noisy\n")
    env = {**home["env"], "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    done = _run(env, "validate", home["champion"])
    assert done.returncode == 1, done.stdout
    report = orjson.loads((home["home"] / "models" / home["champion"] / "report" / "validation.json").read_bytes())
    assert report["failed"] == ["determinism"], report["failed_line"]
    assert report["checks"]["determinism"]["figures"]["distinct_results"] > 1
    cli(home["env"], "validate", home["champion"])  # its files are fine: validated again, it passes


def test_a_model_on_a_fraction_of_the_dates_fails_against_the_champion_unless_forced(home):
    env = home["env"]
    weak = _version(cli(env, "train", "--start", "2025-01-06", "--end", "2025-01-08",
                        "--holdout-days", "2", "--no-promote"))
    done = _run(env, "validate", weak)
    assert done.returncode == 1 and "ground_truth" in done.stderr, done.stdout + done.stderr
    report = orjson.loads((home["home"] / "models" / weak / "report" / "validation.json").read_bytes())
    auc = report["checks"]["ground_truth"]["figures"]["auc"]
    assert auc["difference"] < 0 and auc["interval_95"][1] < 0
    refused = _run(env, "promote", weak)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "--force" in refused.stderr
    forced = _run(env, "promote", weak, "--force")
    assert forced.returncode == 0 and "forced" in forced.stdout
    pointer = orjson.loads((home["home"] / "models" / "PROMOTED").read_bytes())
    assert pointer["model_version"] == weak and pointer["forced"] is True
    assert re.search(rf"\* {weak}.*failed, promoted forced", cli(env, "models").stdout)
    back = _run(env, "promote", home["champion"])  # validated: promoted without a forced mark
    assert back.returncode == 0 and "forced" not in back.stdout
    assert orjson.loads((home["home"] / "models" / "PROMOTED").read_bytes())["forced"] is False


def test_promote_needs_no_engine_for_a_validated_version(home, tmp_path):
    env = home["env"]
    candidate = _version(cli(env, "train", "--holdout-days", "2", "--seed", "8", "--no-promote"))
    unvalidated = _version(cli(env, "train", "--holdout-days", "2", "--seed", "9", "--no-promote"))
    cli(env, "validate", candidate)
    holder = subprocess.Popen(  # another process holds the embedded engine, as a worker does
        [sys.executable, "-c", "import sys, time; from shared.clickhouse.connection import connect, "
         "parse_clickhouse_url; c = connect(parse_clickhouse_url(f'chdb://{sys.argv[1]}/chdb', 'amlscore')); "
         "c.query('SELECT 1'); print('holding', flush=True); time.sleep(120)", str(home["home"])],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        promoted = _run(env, "promote", candidate)
        assert promoted.returncode == 0 and f"promoted {candidate}" in promoted.stdout, promoted.stderr
        assert time.monotonic() - started < 60
        refused = _run(env, "promote", unvalidated)
        assert refused.returncode == 1
        line, = [x for x in refused.stderr.splitlines() if x.startswith("error:")]
        assert f"amlscore validate {unvalidated}" in line and "--force" in line
    finally:
        holder.kill()
        holder.wait()
    cli(env, "promote", home["champion"])
