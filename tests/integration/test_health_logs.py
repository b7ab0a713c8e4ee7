"""``--log-format json``: one JSON object per line for log shippers, masked like text lines."""

from __future__ import annotations

import json
import logging

import pytest

from ptm_sync.interfaces.cli.main import build_parser
from ptm_sync.interfaces.cli.output import JsonFormatter
from tests.support.cli import ptm_sync

URL = "postgresql+psycopg://ptm:Hunter2-secret@db.example.org/ptm"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("ptm_sync.app.sync", logging.WARNING, __file__, 1, message, args, info)


def test_a_line_is_one_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("sync of %s failed: %s", "ada@s.test", "404"))
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING" and entry["logger"] == "ptm_sync.app.sync"
    assert entry["message"] == "sync of ada@s.test failed: 404"
    assert entry["time"].endswith("+00:00")


def test_a_url_password_is_masked_in_the_message_and_the_traceback() -> None:
    try:
        raise RuntimeError(f"cannot connect to {URL}")
    except RuntimeError as exc:
        line = JsonFormatter().format(record("database %s is away", URL, exc=exc))
    assert "Hunter2-secret" not in line
    entry = json.loads(line)
    assert "ptm:***@db.example.org" in entry["message"]
    assert "RuntimeError" in entry["exception"] and "Traceback" in entry["exception"]


@pytest.mark.parametrize(
    "argv",
    [["--log-format", "json", "sync"], ["sync", "--log-format", "json"]],
    ids=["before", "after"],
)
def test_the_option_stands_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).log_format == "json"
    assert build_parser().parse_args(["sync"]).log_format == "text"


def test_a_log_format_that_does_not_exist_is_a_usage_error() -> None:
    done = ptm_sync(None, "--log-format", "xml", "check")
    assert done.returncode == 2 and "--log-format" in done.stderr
