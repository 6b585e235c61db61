"""Who may read scores: tokens (constant-time, labelled, never logged), loopback-only without one."""

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings
from stream.access import ApiAccess, is_loopback

TOKEN = "0123456789abcdef-analysts"


def test_with_tokens_only_a_valid_bearer_token_reads_and_its_label_is_who():
    access = ApiAccess.from_settings(Settings(api_token=f"analysts:{TOKEN},ops-secret-1234567890",
                                              web_host="0.0.0.0"))
    assert access.check(f"Bearer {TOKEN}").status == 200
    assert access.check(f"Bearer {TOKEN}").who == "analysts"
    assert access.check("Bearer ops-secret-1234567890").who == "token-2"
    for header in (None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer analysts"):
        decision = access.check(header)
        assert decision.status == 401 and TOKEN not in decision.message and decision.who == "-"
    assert access.warning is None


def test_without_a_token_reads_are_served_on_loopback_only():
    assert ApiAccess.from_settings(Settings(web_host="127.0.0.1")).check(None).status == 200
    open_bind = ApiAccess.from_settings(Settings(web_host="0.0.0.0"))
    decision = open_bind.check(f"Bearer {TOKEN}")
    assert decision.status == 403 and "AMLSCORE_API_TOKEN" in decision.message
    assert "AMLSCORE_API_TOKEN" in open_bind.warning


def test_tokens_from_a_file_one_per_line(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"analysts:{TOKEN}\nbackup:fedcba9876543210-backup\n")
    access = ApiAccess.from_settings(Settings(api_token_file=path, web_host="0.0.0.0"))
    assert [label for label, _ in access.tokens] == ["analysts", "backup"]


@pytest.mark.parametrize("settings, message", [
    ({"api_token": "short"}, "at least 16"),
    ({"api_token_file": "/nonexistent/tokens"}, "cannot read"),
])
def test_unusable_token_settings_fail_at_start(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        ApiAccess.from_settings(Settings(**settings))


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "::", "worker.internal"))


def test_recording_a_decision_needs_a_token_even_on_loopback():
    from stream.access import ApiAccess
    open_loopback = ApiAccess((), loopback=True)
    assert open_loopback.check(None).status == 200
    assert open_loopback.check_writer(None).status == 401
    assert "AMLSCORE_API_TOKEN" in open_loopback.check_writer(None).message
    tokens = ApiAccess((("alice", b"alice-token-0123456789"),), loopback=True)
    assert tokens.check_writer("Bearer alice-token-0123456789").who == "alice"
    assert tokens.check_writer(None).status == 401
