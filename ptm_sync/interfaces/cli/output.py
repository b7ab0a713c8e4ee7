"""Rendering rows for the command line: table, JSON, CSV (DESIGN §7); the log formats."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ptm_sync.adapters.store.db import safe_traceback
from ptm_sync.ops.redact import mask_urls

#: The format of every log line: time, level, logger, message.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The choices of ``--log-format``: lines for people, or one JSON object per line.
LOG_FORMATS = ("text", "json")


class MaskingFormatter(logging.Formatter):
    """A log format that masks URL passwords and credential parameters in the whole record,
    message and traceback alike (:func:`ptm_sync.ops.redact.mask_urls`), and cuts a database
    error in a traceback to its safe first line (:func:`ptm_sync.adapters.store.db.safe_traceback`:
    PostgreSQL quotes the row's values in its message)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_urls(super().format(record))

    def formatException(self, ei: Any) -> str:
        exc = ei[1] if ei else None
        if isinstance(exc, BaseException):
            return safe_traceback(exc).rstrip("\n")
        return super().formatException(ei)


class JsonFormatter(MaskingFormatter):
    """One JSON object per line for log shippers: ``time`` (ISO 8601, UTC, milliseconds),
    ``level``, ``logger``, ``message``, and ``exception`` when there is one (the traceback as
    :class:`MaskingFormatter` gives it).  The whole line goes through the same masking as a
    text line (:func:`ptm_sync.ops.redact.mask_urls`), after the JSON is made, so a URL's
    password is masked whatever quoting it got."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_urls(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = mask_urls(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = mask_urls(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_urls(self.formatStack(record.stack_info))
        return mask_urls(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: int, log_format: str = "text") -> None:
    """Log to stderr at ``level`` through :class:`MaskingFormatter`, or
    :class:`JsonFormatter` when ``log_format`` is ``"json"``.

    Like :func:`logging.basicConfig`: once per process, and not at all when the root logger
    has handlers already (a program that embeds ptm-sync, a test runner).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else MaskingFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON list with one object per row; datetimes in ISO 8601."""
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows], indent=2) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                ";".join(map(str, v)) if isinstance(v, list | tuple) else _plain(v)
                for v in (row.get(c, "") for c in columns)
            ]
        )
    return buffer.getvalue()


#: What ends a table cell cut to ``max_width``.
ELLIPSIS = "…"


def to_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, max_width: int | None = None
) -> str:
    """A plain aligned text table.  ``max_width``: cells longer than that are cut, ending
    in an ellipsis, so one long value (a 100 KB Message-ID) does not pad every row."""
    cells = [[_cut(_cell(row.get(c, "")), max_width) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def _cut(text: str, max_width: int | None) -> str:
    if max_width is None or len(text) <= max_width:
        return text
    return text[: max_width - len(ELLIPSIS)] + ELLIPSIS


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)
