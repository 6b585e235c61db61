"""Whether a version passed its validation, for promotion and `amlscore models`: the verdict is
kept in the version's report folder with a fingerprint of its model files, so a verdict never
vouches for files that changed after it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from shared.errors import ModelLoadError
from shared.registry import MODEL_NAMES, DirectoryModelRegistry

VALIDATION_FILE = "validation.json"


def report_dir(registry: DirectoryModelRegistry, version: str) -> Path:
    return registry.version_dir(version) / "report"


def files_fingerprint(registry: DirectoryModelRegistry, version: str) -> str:
    """The sha256 of the version's model artifacts, as their metadata records them."""
    digest = hashlib.sha256()
    directory = registry.version_dir(version)
    for name in MODEL_NAMES:
        path = directory / f"{name}.json"
        if path.exists():
            try:
                digest.update(f"{name}:{orjson.loads(path.read_bytes())['artifact_sha256']}".encode())
            except (OSError, orjson.JSONDecodeError, KeyError) as exc:
                raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()


def verdict(registry: DirectoryModelRegistry, version: str) -> tuple[str, str]:
    """("passed" | "failed" | "not validated" | "stale", what it says in one line)."""
    path = report_dir(registry, version) / VALIDATION_FILE
    try:
        report = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return "not validated", f"{version} has not been validated: run `amlscore validate {version}`"
    except (OSError, orjson.JSONDecodeError) as exc:
        return "not validated", f"{path} is unreadable ({exc}): run `amlscore validate {version}`"
    if report.get("fingerprint") != files_fingerprint(registry, version):
        return "stale", (f"{version}'s model files changed after its validation: run "
                         f"`amlscore validate {version}`")
    if report.get("passed"):
        return "passed", f"{version} passed validation ({report.get('validated_at', '')})"
    return "failed", f"{version} failed validation: {report.get('failed_line', 'see validation.json')}"
