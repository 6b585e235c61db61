"""The Kafka client options every amlscore client gets from the settings (what reaches aiokafka)."""

import ssl

import pytest

from shared.errors import ConfigurationError
from shared.kafka_security import kafka_security
from shared.settings import Settings


def test_plaintext_by_default():
    assert kafka_security(Settings()).client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_carries_the_mechanism_user_password_and_a_verifying_context(mechanism, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-a-file\n")
    security = kafka_security(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                                       kafka_username="scorer", kafka_password_file=secret))
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "scorer" and options["sasl_plain_password"] == "s3cret-from-a-file"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(security) and "s3cret" not in security.describe()


def test_sasl_plaintext_has_no_tls_context():
    options = kafka_security(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                                      kafka_username="u", kafka_password="p")).client_options()
    assert "ssl_context" not in options and options["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize("settings, message", [
    ({"kafka_security_protocol": "TLS"}, "must be one of"),
    ({"kafka_security_protocol": "SASL_SSL"}, "AMLSCORE_KAFKA_SASL_MECHANISM"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "must be one of"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"}, "AMLSCORE_KAFKA_USERNAME"),
    ({"kafka_security_protocol": "SSL", "kafka_cert_file": "/etc/hostname"}, "go together"),
    ({"kafka_security_protocol": "SSL", "kafka_ca_file": "/nonexistent.pem"}, "not a readable file"),
    ({"kafka_ca_file": "/etc/hostname"}, "use SSL or SASL_SSL"),
    ({"kafka_security_protocol": "SSL", "kafka_ca_file": "/etc/hostname"}, "cannot be used"),
])
def test_combinations_that_cannot_work_fail_naming_the_setting(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        kafka_security(Settings(**settings))
