"""The database's schema version, and the additive migrations that bring it up to this release.

A database records its version in ``schema_version``. One made by release 0.1.0 has no such
table: it is version 1 when it holds ``alert_scores``, else it is new (0). Migrating compares the
database with this release's declarations (:mod:`shared.clickhouse.ddl`) and adds what is missing:
tables (filled once from the data they derive from), columns (with their default), data-skipping
indexes (built for the rows already there), views, table settings; a plain view whose query
changed is replaced.
Nothing that holds data is dropped: a view retired by a later schema is (it holds none), a
retired table stays as it is, unused. A column whose type differs is a conflict no migration
resolves silently: it is reported.

``ensure_schema`` runs at the start of every command: up to date, it costs one query; behind, it
migrates, unless ``auto`` is off (workers running as a ClickHouse user without DDL rights), in
which case it says what to run.
"""

from __future__ import annotations

import datetime as dt
import logging

from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import check_identifier
from shared.clickhouse.ddl import TABLES, VIEWS, Table
from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8
CHANGES = {
    1: "the tables and views of release 0.1.0",
    2: "unscored_clusters (clusters acknowledged without a cluster_scorer); alert_lookup and "
       "alert_lookup_mv (reads of one alert without a scan); schema_version",
    3: "alert_scores.qc_sample and alert_scores_shadow.qc_sample (suppression's quality-control "
       "sample); alert_rankings shows it",
    4: "alert_dispositions (investigators' decisions, every one kept)",
    5: "alert_scores.alert_id_bloom (GET /alerts/{id} reads only the granules that may hold it); "
       "alert_lookup_mv dropped (one ClickHouse part fewer per write; alert_lookup stays, unused)",
    6: "every table deletes the parts its merges replaced every 1-2 s, not all at once every 30-40 s "
       "(the stream's inserts stalled meanwhile)",
    7: "every table merges column by column in blocks of 1,024 rows (a merge of the stream's small "
       "parts held up to 150 MB, now about 60 MB)",
    8: "every table merges parts of up to 10× each other's size (merge_selector_base = 10): the "
       "stream's rows are rewritten by fewer merges (its merges' CPU cut by a third to two thirds)",
}


class SchemaBehind(ConfigurationError):
    """The database is older than this release and may not be migrated automatically."""


class SchemaConflict(ConfigurationError):
    """A table has a column of another type than this release's: no additive migration fixes it."""


def _tables(client: Client, db: str) -> set[str]:
    rows = client.query("SELECT name FROM system.tables WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    return {r[0] for r in rows}


def _columns(client: Client, db: str) -> dict[str, dict[str, str]]:
    rows = client.query("SELECT table, name, type FROM system.columns WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    found: dict[str, dict[str, str]] = {}
    for table, name, kind in rows:
        found.setdefault(table, {})[name] = kind
    return found


def _settings(client: Client, db: str) -> dict[str, dict[str, str]]:
    """Each table's own engine settings, as its definition states them."""
    rows = client.query("SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    found: dict[str, dict[str, str]] = {}
    for table, engine in rows:
        _, _, listed = engine.partition(" SETTINGS ")
        pairs = (item.split(" = ", 1) for item in listed.split(", ") if " = " in item)
        found[table] = {name.strip(): value.strip().strip("'") for name, value in pairs}
    return found


def _indexes(client: Client, db: str) -> set[tuple[str, str]]:
    rows = client.query("SELECT table, name FROM system.data_skipping_indices WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    return {(r[0], r[1]) for r in rows}


def recorded_version(client: Client, db: str) -> int:
    tables = _tables(client, db)
    if "schema_version" not in tables:
        return 1 if "alert_scores" in tables else 0
    rows = client.query(f"SELECT max(version) FROM {db}.schema_version").result_rows
    return int(rows[0][0] or 0)


def _same_type(declared: str, actual: str) -> bool:
    return declared.replace(" ", "") == actual.replace(" ", "")


def schema_problems(client: Client, db: str, tables: tuple[str, ...]) -> list[str]:
    """What differs between ``tables`` in the database and this release's definitions: the
    check a sink makes before it calls rows that every write refuses bad data."""
    db = check_identifier(db, "database")
    actual = _columns(client, db)
    problems = []
    for declared in TABLES:
        if declared.name not in tables:
            continue
        have = actual.get(declared.name)
        if have is None:
            problems.append(f"table {declared.name} is missing")
            continue
        for name, kind in declared.columns.items():
            if name not in have:
                problems.append(f"{declared.name}.{name} is missing")
            elif not _same_type(kind, have[name]):
                problems.append(f"{declared.name}.{name} is {have[name]}, not {kind}")
    return problems


def plan(client: Client, db: str) -> list[str]:
    """The statements that bring ``db`` up to this release, in order (empty: up to date)."""
    db = check_identifier(db, "database")
    tables, actual = _tables(client, db), _columns(client, db)
    creates, alters, fills, conflicts = [], [], [], []
    indexes, settings = _indexes(client, db), _settings(client, db)
    for declared in TABLES:
        if declared.retired:
            continue  # kept where it is, never created again
        if declared.name not in tables:
            creates.append(declared.create(db))
            if declared.fill:
                fills.append(declared.fill.format(db=db))
            continue
        alters += _added_columns(db, declared, actual.get(declared.name, {}), conflicts)
        for name, definition in declared.indexes.items():
            if (declared.name, name) not in indexes:
                alters += [f"ALTER TABLE {db}.{declared.name} ADD INDEX IF NOT EXISTS {name} {definition}",
                           f"ALTER TABLE {db}.{declared.name} MATERIALIZE INDEX {name}"]
        have = settings.get(declared.name, {})
        changed = {k: v for k, v in declared.settings.items() if have.get(k) != v}
        if changed:
            alters.append(f"ALTER TABLE {db}.{declared.name} MODIFY SETTING "
                          + ", ".join(f"{k} = {v}" for k, v in changed.items()))
    if conflicts:
        raise SchemaConflict("cannot migrate: " + "; ".join(conflicts) + " (a type change is not an "
                             "additive migration: convert the column by hand, then run `amlscore migrate`)")
    before = recorded_version(client, db)
    views = [f"DROP VIEW IF EXISTS {db}.{v.name}" for v in VIEWS if v.retired and v.name in tables]
    views += [v.create(db) for v in VIEWS if v.name not in tables and not v.retired]
    # A plain view whose query changed since the database's version is replaced (it holds no
    # data); a materialized view never is.
    views += [v.create(db).replace("CREATE VIEW IF NOT EXISTS", "CREATE OR REPLACE VIEW", 1)
              for v in VIEWS if v.name in tables and not v.materialized_to and not v.retired
              and v.changed > before]
    statements = creates + alters + views + fills
    if "schema_version" not in tables:
        statements.insert(0, f"CREATE TABLE IF NOT EXISTS {db}.schema_version (version UInt32, "
                             f"description String, applied_at DateTime64(3, 'UTC')) "
                             f"ENGINE = MergeTree ORDER BY version")
    return statements


def _added_columns(db: str, declared: Table, have: dict[str, str], conflicts: list[str]) -> list[str]:
    out = []
    for name, kind in declared.columns.items():
        if name not in have:
            default = f" DEFAULT {declared.defaults[name]}" if name in declared.defaults else ""
            out.append(f"ALTER TABLE {db}.{declared.name} ADD COLUMN IF NOT EXISTS {name} {kind}{default}")
        elif not _same_type(kind, have[name]):
            conflicts.append(f"{declared.name}.{name} is {have[name]}, this release needs {kind}")
    return out


def migrate(client: Client, db: str) -> tuple[int, int, list[str]]:
    """Apply what :func:`plan` says; return (version before, version now, statements run)."""
    db = check_identifier(db, "database")
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    before = recorded_version(client, db)
    if before > SCHEMA_VERSION:
        raise ConfigurationError(f"database {db} is at schema version {before}, newer than this "
                                 f"release's {SCHEMA_VERSION}: upgrade amlscore")
    statements = plan(client, db)
    for statement in statements:
        client.command(statement)
    if before < SCHEMA_VERSION:
        now = dt.datetime.now(dt.UTC)
        client.insert(f"{db}.schema_version",
                      [[v, CHANGES[v], now] for v in range(max(before, 0) + 1, SCHEMA_VERSION + 1)],
                      column_names=["version", "description", "applied_at"])
        if before:
            log.info("database %s migrated from schema %d to %d", db, before, SCHEMA_VERSION)
    return before, SCHEMA_VERSION, statements


def ensure_schema(client: Client, db: str, auto: bool = True) -> None:
    """At a command's start: nothing when up to date; else migrate, or (``auto`` off) say how."""
    db = check_identifier(db, "database")
    if auto:
        client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    version = recorded_version(client, db)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise ConfigurationError(f"database {db} is at schema version {version}, newer than this "
                                 f"release's {SCHEMA_VERSION}: upgrade amlscore")
    if not auto:
        state = f"is at schema version {version}" if version else "holds no amlscore tables yet"
        raise SchemaBehind(f"database {db} {state}, this release needs schema version "
                           f"{SCHEMA_VERSION}: run `amlscore migrate` (as a ClickHouse user allowed "
                           "to alter tables), or unset AMLSCORE_AUTO_MIGRATE=false")
    migrate(client, db)
