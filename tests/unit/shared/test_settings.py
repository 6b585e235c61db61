import pytest

from shared.clickhouse.connection import check_identifier, parse_clickhouse_url
from shared.errors import ConfigurationError
from shared.settings import load_settings


def test_server_url_with_credentials_is_parsed_and_never_printed():
    target = parse_clickhouse_url("https://alice:s%40cret@ch.example:9443/aml")
    assert (target.interface, target.host, target.port, target.database) == ("https", "ch.example", 9443, "aml")
    assert target.username == "alice" and target.password == "s@cret"
    assert "s@cret" not in target.describe() and "s@cret" not in repr(target)


def test_password_file_overrides_url(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    target = parse_clickhouse_url("http://bob@host", password_file=secret)
    assert target.password == "from-file" and target.port == 8123 and target.database == "amlscore"


def test_chdb_url_and_default(tmp_path, monkeypatch):
    assert parse_clickhouse_url(f"chdb://{tmp_path}/x").path == tmp_path / "x"
    monkeypatch.delenv("AMLSCORE_CLICKHOUSE_URL", raising=False)
    monkeypatch.setenv("AMLSCORE_HOME", str(tmp_path))
    assert load_settings().clickhouse_url_value() == f"chdb://{tmp_path.resolve()}/chdb"


@pytest.mark.parametrize("url", ["mysql://h/db", "http:///db", "chdb://", "http://h/bad-name"])
def test_bad_urls_fail_with_a_clear_message(url):
    with pytest.raises(ConfigurationError):
        parse_clickhouse_url(url)


def test_identifiers_are_checked():
    assert check_identifier("raw_alerts") == "raw_alerts"
    for bad in ("x; DROP TABLE y", "a b", "1abc", ""):
        with pytest.raises(ConfigurationError):
            check_identifier(bad)


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("AMLSCORE_PREDICT_THREADS", "3")
    monkeypatch.setenv("AMLSCORE_RISK_BANDS", "[0.2, 0.4, 0.8]")
    settings = load_settings()
    assert settings.predict_threads == 3 and settings.risk_bands == (0.2, 0.4, 0.8)
    monkeypatch.setenv("AMLSCORE_RISK_BANDS", "[0.5, 0.4, 0.8]")
    with pytest.raises(ConfigurationError, match="risk_bands"):
        load_settings()
