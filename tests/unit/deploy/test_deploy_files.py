"""The deployment files: compose validated against the compose specification (offline, the
schema bundled with check-jsonschema), and the properties the deployment relies on."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.backends import docker_unavailable_reason

ROOT = Path(__file__).parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_spec_errors(document: dict) -> list[str]:
    """Validate with the compose-spec schema that check-jsonschema vendors (read from its package
    directory: importing check_jsonschema needs a click newer than faust allows)."""
    package = Path(importlib.util.find_spec("check_jsonschema").submodule_search_locations[0])
    schema = json.loads((package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_spec(compose):
    assert compose_spec_errors(compose) == []


def test_the_schema_check_is_not_a_rubber_stamp(compose):
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["worker"]["restart"] = 12
    broken["services"]["worker"]["replicas_typo"] = True
    assert len(compose_spec_errors(broken)) >= 2


def test_kafka_runs_in_kraft_mode_and_services_have_healthchecks(compose):
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name in ("kafka", "clickhouse"):
        assert services[name]["healthcheck"]["test"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for topic in ("aml.alerts", "aml.clusters", "aml.alert-scores", "aml.alerts.dlq"):
        assert topic in services["topics"]["command"][0]


def test_worker_scales_and_batch_commands_are_one_off_profiles(compose):
    services = compose["services"]
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name in ("synth", "ingest", "train", "backfill", "replay", "export"):
        assert services[name]["profiles"] == ["batch"], name
        assert services[name]["command"][0] == name
        assert "models:/models" in services[name]["volumes"]
    assert "models:/models" in worker["volumes"]


def test_no_credentials_in_the_files(compose):
    text = COMPOSE.read_text()
    assert re.search(r"CLICKHOUSE_PASSWORD:\s*\$\{CLICKHOUSE_PASSWORD:\?", text)
    assert compose["secrets"]["clickhouse_password"] == {"environment": "CLICKHOUSE_PASSWORD"}
    env = compose["services"]["worker"]["environment"]
    assert "@clickhouse" in env["AMLSCORE_CLICKHOUSE_URL"] and ":" not in env["AMLSCORE_CLICKHOUSE_URL"].split("//")[1].split("@")[0]
    assert env["AMLSCORE_CLICKHOUSE_PASSWORD_FILE"].startswith("/run/secrets/")
    # the worker's read API is behind a token from a secret file, never one in the file
    assert compose["secrets"]["api_token"] == {"environment": "AMLSCORE_API_TOKEN"}
    assert env["AMLSCORE_API_TOKEN_FILE"] == "/run/secrets/api_token"
    assert "api_token" in compose["services"]["worker"]["secrets"]
    assert "AMLSCORE_API_TOKEN:" not in text.replace("AMLSCORE_API_TOKEN_FILE:", "")


def test_dockerfile_is_multi_stage_non_root_with_a_liveness_healthcheck():
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/live" in text
    assert "chdb" not in re.sub(r"#.*", "", text)


def test_image_builds_where_docker_runs(tmp_path):
    reason = docker_unavailable_reason()
    if reason:
        pytest.skip(f"{reason}: the Dockerfile cannot be built here")
    tag = "amlscore:test"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    user = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert user != "0"
    subprocess.run(["docker", "run", "--rm", tag, "--help"], check=True)
