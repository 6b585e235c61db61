"""ClickHouse access: one client factory, one DDL module, one store per concern."""

from shared.clickhouse.connection import ClickHouseTarget, connect, parse_clickhouse_url
from shared.clickhouse.migrations import ensure_schema

__all__ = ["ClickHouseTarget", "connect", "ensure_schema", "parse_clickhouse_url"]
