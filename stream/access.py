"""Who may read scores from the worker's HTTP port.

Scores name addresses under suspicion: the read endpoints need a bearer token from
``AMLSCORE_API_TOKEN`` / ``AMLSCORE_API_TOKEN_FILE`` (comma- or newline-separated, each optionally
``label:token``; the label, never the token, is what the access log records). With no token
configured they are served only when the worker binds a loopback address (a developer's machine,
the demo); on any other bind they answer 403 naming the setting. Recording a decision
(``POST /alerts/{alert_id}/disposition``) always needs a token: its label is recorded as the
analyst who decided. Probes and scrapers (``/live``,
``/ready``, ``/metrics``) stay open: they carry no scores.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigurationError
from shared.settings import Settings

MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def parse_tokens(text: str, source: str) -> tuple[tuple[str, bytes], ...]:
    tokens = []
    entries = [e.strip() for e in text.replace("\n", ",").split(",") if e.strip()]
    for i, entry in enumerate(entries, 1):
        label, sep, token = entry.partition(":")
        if not sep:
            label, token = f"token-{i}", entry
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise ConfigurationError(
                f"{source}: token {label!r} must be at least {MIN_TOKEN_LENGTH} characters with no "
                "spaces (e.g. `openssl rand -hex 32`)")
        tokens.append((label, token.encode()))
    if not tokens:
        raise ConfigurationError(f"{source} holds no token")
    return tuple(tokens)


@dataclass(frozen=True)
class Decision:
    status: int            # 200: go on; 401 / 403: refused
    who: str               # the token's label, "loopback" or "-"
    message: str = ""


@dataclass(frozen=True)
class ApiAccess:
    tokens: tuple[tuple[str, bytes], ...]
    loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiAccess:
        """Fails at startup when a token file cannot be read or a token is unusable."""
        tokens: tuple[tuple[str, bytes], ...] = ()
        if settings.api_token is not None and settings.api_token.get_secret_value().strip():
            tokens += parse_tokens(settings.api_token.get_secret_value(), "AMLSCORE_API_TOKEN")
        if settings.api_token_file is not None:
            path = Path(settings.api_token_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigurationError(f"AMLSCORE_API_TOKEN_FILE: cannot read {path}: "
                                         f"{exc.strerror or exc}") from exc
            tokens += parse_tokens(text, f"AMLSCORE_API_TOKEN_FILE ({path})")
        return cls(tokens, is_loopback(settings.web_host))

    @property
    def warning(self) -> str | None:
        """What the worker says at start when its scores cannot be read by anyone."""
        if not self.tokens and not self.loopback:
            return ("no AMLSCORE_API_TOKEN set and the worker binds a non-loopback address: the "
                    "read endpoints answer 403 until a token is configured")
        return None

    def check_writer(self, authorization: str | None) -> Decision:
        """Recording a decision needs a token, loopback or not: its label is who decided."""
        if not self.tokens:
            return Decision(401, "-", "recording a decision needs a token per analyst: set "
                                      "AMLSCORE_API_TOKEN or AMLSCORE_API_TOKEN_FILE (label:token)")
        return self.check(authorization)

    def check(self, authorization: str | None) -> Decision:
        if not self.tokens:
            if self.loopback:
                return Decision(200, "loopback")
            return Decision(403, "-", "score reads are served on a non-loopback address only with "
                                      "AMLSCORE_API_TOKEN or AMLSCORE_API_TOKEN_FILE set")
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return Decision(401, "-", "send Authorization: Bearer <token>")
        offered = presented.strip().encode()
        who = None
        for label, token in self.tokens:  # every token compared: the time says nothing of which
            if hmac.compare_digest(offered, token) and who is None:
                who = label
        if who is None:
            return Decision(401, "-", "the token is not valid")
        return Decision(200, who)
