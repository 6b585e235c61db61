"""Turn ``AMLSCORE_CLICKHOUSE_URL`` into a clickhouse-connect client.

``http(s)://user:pass@host:port/db`` reaches a server; ``chdb:///dir`` (or no URL) opens the
embedded engine through clickhouse-connect's own chdb interface, so both run the same SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from shared.clickhouse.deadline import TimedClient
from shared.errors import ClickHouseUnavailable, ConfigurationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_OWN_CLAUSE = re.compile(r"\b(SETTINGS|FORMAT)\b", re.IGNORECASE)
# What the embedded engine itself keeps in its directory; anything else there is someone else's.
_ENGINE_ENTRIES = {"data", "metadata", "metadata_dropped", "store", "tmp", "user_files", "flags",
                   "format_schemas", "preprocessed_configs", "access", "status", "uuid",
                   "user_scripts", "user_defined", "named_collections", "dictionaries_lib"}


def is_identifier(name: str) -> bool:
    return bool(_IDENTIFIER.match(name))


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
    timeout: float = 600.0  # seconds any one call may take (AMLSCORE_CLICKHOUSE_TIMEOUT)

    def describe(self) -> str:
        """A printable form with no credentials in it."""
        if self.interface == "chdb":
            return f"chdb://{self.path} (database {self.database})"
        return f"{self.interface}://{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(
    url: str, default_database: str = "amlscore", password_file: Path | None = None,
    timeout: float = 600.0,
) -> ClickHouseTarget:
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        raw = unquote(parts.netloc + parts.path)
        if not raw:
            raise ConfigurationError("chdb URL needs a directory, e.g. chdb:///var/lib/amlscore")
        return ClickHouseTarget("chdb", check_identifier(default_database, "database"), Path(raw),
                                timeout=timeout)
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
        timeout=timeout,
    )


def check_embedded_path(path: Path) -> Path:
    """The embedded engine writes ``data/ metadata/ store/ …`` straight into its directory, so it
    gets a directory of its own: not a filesystem root or a home, nor one holding other files."""
    resolved = path.expanduser().resolve()
    if resolved == resolved.parent or resolved == Path.home().resolve():
        raise ConfigurationError(
            f"chdb://{resolved} would scatter ClickHouse's files over {resolved}; give the embedded "
            "engine a directory of its own, e.g. chdb:///var/lib/amlscore/chdb")
    if resolved.exists() and not resolved.is_dir():
        raise ConfigurationError(f"chdb://{resolved} is a file, not a directory")
    foreign = sorted(p.name for p in resolved.iterdir() if p.name not in _ENGINE_ENTRIES) \
        if resolved.is_dir() else []
    if foreign:
        raise ConfigurationError(
            f"chdb://{resolved} holds files that are not ClickHouse's ({', '.join(foreign[:3])}"
            f"{' …' if len(foreign) > 3 else ''}); give the embedded engine an empty directory of its own")
    return resolved


class ArrowOnOneThread:
    """The embedded engine's Arrow reads run on one thread. Measured here (chdb-core-lite 26.5,
    `python -m tests.benchmarks.arrow_hang`): a query answering in Arrow on more than one thread
    now and then never returns — the engine's pull executor waits on its own wake-up pipe, its
    threads parked, no CPU used. Over 1M-alert range reads at the default two threads 4 of 4 runs
    stuck within 18 queries, with FINAL or without, with concurrency control on or off; on one
    thread none of 240 queries did, nor did Native output on two threads (but that is 2× slower
    than Arrow on one). The train-time hang of the 1M benchmark was this."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query_arrow(self, query: str, parameters: Any = None,
                    settings: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        # One engine call, not four: given as a per-call setting, max_threads costs the chdb
        # backend three more calls (read it from system.settings, SET it, SET it back). A small
        # read took 5.7 ms that way against 2.0 ms with the setting in the query's text (measured
        # here). A query with a SETTINGS or FORMAT clause of its own, or with settings of the
        # caller's, keeps the per-call form.
        if settings or _OWN_CLAUSE.search(query):
            return self._client.query_arrow(query, parameters, {**(settings or {}), "max_threads": 1},
                                            **kwargs)
        return self._client.query_arrow(f"{query.rstrip().rstrip(';')}\nSETTINGS max_threads = 1",
                                        parameters, **kwargs)


# The embedded engine's server settings (given when it starts, with the first client of the
# process). Its merges run at a lower OS priority than the threads that score, read Kafka and
# insert: merges of the stream's small parts are background work that can wait for a spare
# moment, an insert a micro-batch waits on cannot. Measured on the 2-core box at 2,000 alerts/s:
# merges took 15-30 % of a core at the default priority, competing with every insert. The engine
# applies it only with CAP_SYS_NICE (root): elsewhere, as in the image's non-root user, merges run
# at the priority of the process that opened the engine (in the worker, its scoring process,
# which runs below its Faust process).
# Its caches are bounded for a process that shares the machine: by default each may grow to half
# the RAM (5 GiB marks, 5 GiB primary index here), so a long-running worker's memory would grow
# with the data it has touched. A few tens of MB hold the marks of every table amlscore reads.
ENGINE_OPTIONS = {
    "os_threads_nice_value_merge_mutate": "10",
    "mark_cache_size": str(64 << 20),
    "primary_index_cache_size": str(64 << 20),
    "index_mark_cache_size": str(32 << 20),
    "query_condition_cache_size": str(16 << 20),
    "compiled_expression_cache_size": str(16 << 20),
}


def connect(target: ClickHouseTarget, create_database: bool = True) -> Client:
    """Open a client and (unless told not to: a user without DDL rights) make sure the target
    database exists. Every call of the client is time-limited: ``max_execution_time`` on the
    engine, socket timeouts on a server, and :mod:`shared.clickhouse.deadline` for the rest."""
    limits = {"max_execution_time": max(1, round(target.timeout))}
    if target.interface == "chdb":
        assert target.path is not None
        try:
            import chdb  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "the embedded ClickHouse engine needs `pip install 'amlscore[embedded]'` (package "
                "chdb); or set AMLSCORE_CLICKHOUSE_URL to a ClickHouse server"
            ) from exc
        path = check_embedded_path(target.path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            client = ArrowOnOneThread(
                clickhouse_connect.get_client(interface="chdb", path=str(path), settings=limits,
                                              chdb_options=ENGINE_OPTIONS))
        except OSError as exc:
            raise ConfigurationError(f"cannot create the embedded ClickHouse directory: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - chdb says only "Error initializing EmbeddedServer"
            raise ClickHouseUnavailable(
                f"cannot open the embedded ClickHouse at {path}: another process holds it (a running "
                "`amlscore worker`?). The embedded engine serves one process at a time: stop that "
                "process, or run against a ClickHouse server (AMLSCORE_CLICKHOUSE_URL=http://…) to "
                f"share one database ({_first_line(exc)})") from exc
    else:
        try:
            client = clickhouse_connect.get_client(
                interface=target.interface,
                host=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                database="default",
                settings=limits,
                connect_timeout=min(30.0, target.timeout),
                send_receive_timeout=target.timeout + 5,
            )
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS, authentication
            raise ClickHouseUnavailable(
                f"cannot reach ClickHouse at {target.describe()}: {_first_line(exc)}") from exc
    client = TimedClient(client)
    if create_database:
        try:
            client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
        except Exception as exc:  # noqa: BLE001 - the server is there but does not answer
            if target.interface == "chdb":
                raise
            raise ClickHouseUnavailable(
                f"cannot reach ClickHouse at {target.describe()}: {_first_line(exc)}") from exc
    return client


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
