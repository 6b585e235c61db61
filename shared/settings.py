"""Settings from the environment (prefix ``AMLSCORE_``); credentials never come from code."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError

DEFAULT_HOME = Path("amlscore-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AMLSCORE_", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Working directory for embedded data and models")
    clickhouse_url: SecretStr | None = Field(
        None,
        description="http(s)://user:pass@host:8123/db for a server; chdb:///dir or unset for embedded",
    )
    clickhouse_password_file: Path | None = Field(
        None, description="File holding the ClickHouse password (overrides one in the URL)"
    )
    clickhouse_database: str = Field("amlscore", description="Database used when the URL names none")
    clickhouse_timeout: float = Field(
        600.0, gt=0, description="Seconds any one ClickHouse call may take; a batch command whose "
                                 "call runs longer ends with one line naming it, exit 1")
    auto_migrate: bool = Field(
        True, description="Commands bring an older database's schema up to date at start; false: "
                          "they exit 2 when it is behind (run `amlscore migrate`)")
    models_dir: Path | None = Field(None, description="Model artifacts; default <home>/models")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated")
    kafka_security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)")
    kafka_username: str | None = Field(None, description="SASL user name")
    kafka_password: SecretStr | None = Field(None, description="SASL password")
    kafka_password_file: Path | None = Field(None, description="File holding the SASL password")
    kafka_ca_file: Path | None = Field(
        None, description="PEM CA bundle the broker's certificate is checked against (default: the system's)")
    kafka_cert_file: Path | None = Field(None, description="PEM client certificate (mTLS)")
    kafka_key_file: Path | None = Field(None, description="PEM key of the client certificate")
    alerts_topic: str = Field("aml.alerts", description="Input: AlertEvents")
    scores_topic: str = Field("aml.alert-scores", description="Output: ScoreEvents")
    clusters_topic: str = Field("aml.clusters", description="Input: ClusterEvents")
    dispositions_topic: str = Field("aml.dispositions",
                                    description="Input: DispositionEvents (investigators' decisions)")
    dlq_topic: str = Field("aml.alerts.dlq", description="Dead letters (original bytes + reason headers)")
    topic_partitions: int = Field(4, ge=1, description="Partitions of topics the worker creates")
    worker_id: str = Field("amlscore-worker", description="Consumer group / Faust app id")
    web_host: str = Field("127.0.0.1", description="Worker HTTP bind address (health, metrics)")
    web_port: int = Field(6066, ge=1, le=65535, description="Worker HTTP port; one per worker")
    web_tls_cert: Path | None = Field(None, description="PEM certificate: the worker serves HTTPS")
    web_tls_key: Path | None = Field(None, description="PEM private key of web_tls_cert")
    api_token: SecretStr | None = Field(
        None, description="Read-API bearer tokens, comma-separated, each optionally label:token")
    api_token_file: Path | None = Field(None, description="File holding the read-API tokens (same form)")
    api_max_concurrent: int = Field(2, ge=1, le=64, description="Read-API queries at once (429 beyond)")
    api_query_timeout: float = Field(5.0, gt=0, le=300, description="Seconds a read-API query may run (503 beyond)")
    api_max_memory_mb: int = Field(256, ge=16, description="Memory one read-API query may use (MB)")
    batch_size: int = Field(2000, ge=1, description="Max events per micro-batch")
    batch_max_bytes: int = Field(
        4 * 1024 * 1024, ge=1024,
        description="Max bytes of events per micro-batch (envelopes carry many alerts a message)")
    batch_wait: float = Field(
        0.02, gt=0, description="Longest an agent waits filling a micro-batch before handing it on")
    batches_in_flight: int = Field(
        2, ge=1, le=8, description="Micro-batches in flight: one scored while the next is taken")
    session_timeout: float = Field(10.0, gt=0, description="Kafka consumer session timeout (s)")
    rebalance_timeout: float = Field(10.0, gt=0, description="Kafka rebalance timeout (s)")
    heartbeat_interval: float = Field(2.0, gt=0, description="Kafka heartbeat interval (s)")
    commit_interval: float = Field(1.0, gt=0, description="Seconds between offset commits")
    fetch_max_wait_ms: int = Field(
        20, ge=1, description="Longest a consumer fetch waits for data (Faust's fixed 1500 is too long)")
    max_message_bytes: int = Field(1_048_576, ge=1024, description="Larger events are dead-lettered")
    feature_cache_size: int = Field(100_000, ge=0, description="Address feature rows cached")
    feature_cache_ttl: float = Field(600.0, ge=0, description="Seconds a cached feature row is used")
    model_poll_interval: float = Field(5.0, gt=0, description="Seconds between promoted-model checks")
    retry_max_delay: float = Field(10.0, gt=0, description="Cap of the sink/produce retry backoff (s)")
    stall_timeout: float = Field(300.0, gt=0, description="Liveness fails when a batch takes longer")
    shutdown_timeout: float = Field(
        30.0, gt=0, description="Seconds a graceful stop may take before the worker exits anyway")
    cluster_member_wait: float = Field(5.0, ge=0, description="Seconds to wait for cluster members")
    networks: tuple[str, ...] | None = Field(None, description="Accepted networks; default: the model's")
    stream_sink: str | None = Field(
        None, description="module:callable given the ClickHouse sink, returning the sink to use (wrap or replace)")
    log_level: str = Field("info", description="Worker log level")
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint override for ingest")
    s3_anonymous: bool = Field(False, description="Read s3:// sources without credentials")
    scoring_nice: int = Field(
        5, ge=0, le=19,
        description="Niceness the worker's scoring process adds to its own (0: none): on a box "
                    "short of CPU the Faust process goes first and micro-batches grow")
    predict_threads: int = Field(1, ge=1, description="Threads per XGBoost predict call")
    train_threads: int = Field(2, ge=1, description="Threads for XGBoost training")
    explain_min_score: float = Field(
        0.30, ge=0.0, le=1.0,
        description="Alerts scoring at least this get a TreeSHAP explanation (default: the high band; 0 = all)",
    )
    explain_top_k: int = Field(5, ge=1, description="Features per explanation")
    drift_window: int = Field(10_000, ge=0, description="Live alerts kept for drift (0: off)")
    drift_psi_watch: float = Field(0.10, gt=0, description="PSI above which a feature is 'watch'")
    drift_psi_act: float = Field(0.25, gt=0, description="PSI above which a feature is 'act'")
    review_capacity: int = Field(
        100, ge=1, description="Alerts per network per day the analysts review: the capacity the "
                               "reports' recall and precision are given at")
    suppress: bool = Field(
        False, description="on: alerts below the promoted version's suppression threshold get "
                           "risk_level suppressible (stream and backfill alike)")
    suppress_max_miss: float = Field(
        0.01, gt=0, lt=1, description="Training picks the suppression threshold so that the 95 % "
                                     "upper bound of the share of positives below it is at most this")
    suppress_qc_share: float = Field(
        0.02, ge=0, le=1, description="Share of would-be-suppressed alerts kept in the queue as a "
                                      "quality-control sample (chosen by a hash of alert_id)")
    validate_runs: int = Field(3, ge=2, le=10, description="Fresh processes the determinism check runs")
    risk_bands: tuple[float, float, float] = Field(
        (0.10, 0.30, 0.60), description="Score thresholds for medium, high, critical"
    )

    @field_validator("risk_bands")
    @classmethod
    def _bands_increase(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not (0.0 < value[0] < value[1] < value[2] < 1.0):
            raise ValueError("risk_bands must be three increasing thresholds inside (0, 1)")
        return value

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.home / "models"

    def clickhouse_url_value(self) -> str:
        if self.clickhouse_url is None or not self.clickhouse_url.get_secret_value():
            return f"chdb://{(self.home / 'chdb').resolve()}"
        return self.clickhouse_url.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except Exception as exc:  # pydantic's ValidationError names the field
        raise ConfigurationError(f"invalid AMLSCORE_* setting: {exc}") from exc
