"""Where the server-backed tests get their services: an external one named by the environment,
else testcontainers when a Docker engine answers, else a skip that says why."""

from __future__ import annotations

import os


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable engine
        return f"no Docker engine ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def external(name: str) -> str | None:
    return os.environ.get(name) or None
