"""The one place Kafka client security is built from the settings: TLS (a CA, optionally a client
certificate for mTLS) and SASL (PLAIN, SCRAM-SHA-256/512). Every client amlscore makes — the
worker (Faust's ``broker_credentials``), its producer, replay, dlq, the demo and the benchmarks —
gets its options from :func:`kafka_security`, so they all reach the same managed cluster."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError
from shared.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin clients."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        return options

    def describe(self) -> str:
        """For logs: what is used, never a secret."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.mechanism} as {self.username}")
        return " ".join(parts)


def _readable(path: Path, setting: str) -> str:
    if not path.is_file():
        raise ConfigurationError(f"{setting}: {path} is not a readable file")
    return str(path)


def tls_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """A client TLS context verifying the broker (with ``ca_file``, else the system CAs), with a
    client certificate when both ``cert_file`` and ``key_file`` are given (mTLS)."""
    if (cert_file is None) != (key_file is None):
        raise ConfigurationError("AMLSCORE_KAFKA_CERT_FILE and AMLSCORE_KAFKA_KEY_FILE go together "
                                 "(a client certificate needs its key)")
    try:
        context = ssl.create_default_context(
            cafile=_readable(ca_file, "AMLSCORE_KAFKA_CA_FILE") if ca_file else None)
        if cert_file is not None and key_file is not None:
            context.load_cert_chain(_readable(cert_file, "AMLSCORE_KAFKA_CERT_FILE"),
                                    _readable(key_file, "AMLSCORE_KAFKA_KEY_FILE"))
    except ssl.SSLError as exc:
        raise ConfigurationError(f"Kafka TLS files cannot be used: {exc}") from exc
    return context


def kafka_security(settings: Settings) -> KafkaSecurity:
    """Fails with a message naming the setting when the combination cannot work."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigurationError(f"AMLSCORE_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
    tls_files = (settings.kafka_ca_file, settings.kafka_cert_file, settings.kafka_key_file)
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and any(tls_files):
        raise ConfigurationError(f"AMLSCORE_KAFKA_CA_FILE/CERT_FILE/KEY_FILE are set but "
                                 f"AMLSCORE_KAFKA_SECURITY_PROTOCOL is {protocol}: use SSL or SASL_SSL")
    context = tls_context(*tls_files) if protocol in ("SSL", "SASL_SSL") else None
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        return KafkaSecurity(protocol, ssl_context=context)
    mechanism = (settings.kafka_sasl_mechanism or "").upper()
    if mechanism not in MECHANISMS:
        raise ConfigurationError(f"AMLSCORE_KAFKA_SASL_MECHANISM must be one of {', '.join(MECHANISMS)} "
                                 f"with {protocol}")
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
    if settings.kafka_password_file is not None:
        try:
            password = Path(settings.kafka_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"AMLSCORE_KAFKA_PASSWORD_FILE: cannot read "
                                     f"{settings.kafka_password_file}: {exc.strerror or exc}") from exc
    if not settings.kafka_username or not password:
        raise ConfigurationError(f"{protocol} needs AMLSCORE_KAFKA_USERNAME and AMLSCORE_KAFKA_PASSWORD "
                                 "(or AMLSCORE_KAFKA_PASSWORD_FILE)")
    return KafkaSecurity(protocol, mechanism, settings.kafka_username, password, context)
