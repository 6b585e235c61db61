"""Turn ``AMLSCORE_CLICKHOUSE_URL`` into a clickhouse-connect client.

``http(s)://user:pass@host:port/db`` reaches a server; ``chdb:///dir`` (or no URL) opens the
embedded engine through clickhouse-connect's own chdb interface, so both run the same SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from shared.errors import ConfigurationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_identifier(name: str, what: str = "identifier") -> str:
    """Identifiers cannot be bound as parameters, so they must match a strict pattern."""
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(f"{what} {name!r} must match {_IDENTIFIER.pattern}")
    return name


@dataclass(frozen=True)
class ClickHouseTarget:
    interface: str  # "chdb", "http" or "https"
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = field(default="", repr=False)

    def describe(self) -> str:
        """A printable form with no credentials in it."""
        if self.interface == "chdb":
            return f"chdb://{self.path} (database {self.database})"
        return f"{self.interface}://{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(
    url: str, default_database: str = "amlscore", password_file: Path | None = None
) -> ClickHouseTarget:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raw = unquote(parts.netloc + parts.path)
        if not raw:
            raise ConfigurationError("chdb URL needs a directory, e.g. chdb:///var/lib/amlscore")
        return ClickHouseTarget("chdb", check_identifier(default_database, "database"), Path(raw))
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"AMLSCORE_CLICKHOUSE_URL scheme {parts.scheme!r} not supported: use http://, https:// "
            "or chdb:///dir"
        )
    if not parts.hostname:
        raise ConfigurationError("AMLSCORE_CLICKHOUSE_URL has no host")
    database = parts.path.strip("/") or default_database
    password = unquote(parts.password or "")
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read ClickHouse password file: {exc}") from exc
    return ClickHouseTarget(
        interface=parts.scheme,
        database=check_identifier(database, "database"),
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username or "default"),
        password=password,
    )


def connect(target: ClickHouseTarget) -> Client:
    """Open a client and make sure the target database exists."""
    if target.interface == "chdb":
        assert target.path is not None
        try:
            import chdb  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "the embedded ClickHouse engine needs `pip install 'amlscore[embedded]'` (package "
                "chdb); or set AMLSCORE_CLICKHOUSE_URL to a ClickHouse server"
            ) from exc
        target.path.mkdir(parents=True, exist_ok=True)
        client = clickhouse_connect.get_client(interface="chdb", path=str(target.path))
    else:
        client = clickhouse_connect.get_client(
            interface=target.interface,
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            database="default",
        )
    client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
    return client
