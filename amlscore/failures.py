"""How a failure reaches the person at the terminal: one line and an exit code, never a traceback
(unless ``AMLSCORE_LOG_LEVEL=debug``, which re-raises it whole)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps

import click

from shared.errors import AmlScoreError, ConfigurationError

EXIT_FAILED = 1   # the command could not do its work (data refused, service unreachable, …)
EXIT_USAGE = 2    # settings or arguments are wrong: fix the invocation


def _debug() -> bool:
    return os.environ.get("AMLSCORE_LOG_LEVEL", "").lower() == "debug"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:400] if lines else ""


def describe(exc: BaseException) -> tuple[str, int]:
    """(one line for the user, exit code) for any exception a command lets out."""
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, AmlScoreError):
        return f"error: {exc}", EXIT_FAILED
    module = type(exc).__module__ or ""
    if module.startswith("aiokafka") or isinstance(exc, ConnectionError):
        bootstrap = os.environ.get("AMLSCORE_KAFKA_BOOTSTRAP", "localhost:9092")
        return (f"error: cannot reach Kafka at {bootstrap} ({_first_line(exc) or type(exc).__name__}); "
                "is the broker up and AMLSCORE_KAFKA_BOOTSTRAP right?"), EXIT_FAILED
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"error: {exc.strerror or type(exc).__name__}: {exc.filename}", EXIT_FAILED
    detail = _first_line(exc)
    return (f"error: {type(exc).__name__}{': ' + detail if detail else ''} "
            "(AMLSCORE_LOG_LEVEL=debug shows where)"), EXIT_FAILED


def quiet_libraries() -> None:
    """For one-shot commands: client libraries log their own connection failures, and the one
    line of :func:`describe` says it for them. (Not for the worker, whose logs are its record.)"""
    if not _debug():
        for name in ("aiokafka", "kafka", "clickhouse_connect", "faust", "mode"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def one_line_errors(func: Callable) -> Callable:
    """Wrap a click command so that whatever it raises ends as one line on stderr and an exit code;
    click's own usage errors and exits pass through unchanged."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if _debug():
                raise
            message, code = describe(exc)
            click.echo(message, err=True)
            sys.exit(code)
    return wrapper
