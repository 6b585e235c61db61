"""Wiring from settings to the stores and the scoring core (no argument parsing, no printing)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from clickhouse_connect.driver.client import Client

from shared.clickhouse.connection import ClickHouseTarget, connect, parse_clickhouse_url
from shared.clickhouse.disposition_store import DispositionStore
from shared.clickhouse.migrations import ensure_schema
from shared.clickhouse.raw_store import RawStore
from shared.clickhouse.registry_store import RegistryStore
from shared.clickhouse.score_store import ScoreStore
from shared.registry import DirectoryModelRegistry
from shared.scoring import RiskScoring, ScoringPolicy
from shared.settings import Settings


@dataclass
class Context:
    settings: Settings

    @cached_property
    def target(self) -> ClickHouseTarget:
        return parse_clickhouse_url(self.settings.clickhouse_url_value(),
                                    self.settings.clickhouse_database,
                                    self.settings.clickhouse_password_file,
                                    self.settings.clickhouse_timeout)

    @cached_property
    def client(self) -> Client:
        auto = self.settings.auto_migrate
        client = connect(self.target, create_database=auto)
        ensure_schema(client, self.target.database, auto=auto)
        return client

    @cached_property
    def raw(self) -> RawStore:
        return RawStore(self.client, self.target.database)

    @cached_property
    def scores(self) -> ScoreStore:
        return ScoreStore(self.client, self.target.database)

    @cached_property
    def dispositions(self) -> DispositionStore:
        return DispositionStore(self.client, self.target.database)

    @cached_property
    def registry_table(self) -> RegistryStore:
        return RegistryStore(self.client, self.target.database)

    @cached_property
    def models(self) -> DirectoryModelRegistry:
        return DirectoryModelRegistry(self.settings.resolved_models_dir)

    def scoring(self, version: str | None = None) -> RiskScoring:
        """The promoted model (or ``version``); fails with what to do if there is none."""
        bundle = self.models.load(version) if version else self.models.load_current()
        return RiskScoring(bundle, ScoringPolicy.from_settings(self.settings))
