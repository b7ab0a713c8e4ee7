"""What every part of the fake Google (:mod:`tests.support.fake_google`) shares: the record of
a request, a stored calendar, RFC 3339 times as Google writes them, and error answers with
Google's JSON error body.

Written from Google Calendar API v3's "Handle API errors" (``error.errors[]`` with
``domain``, ``reason``, ``message``; ``usageLimits`` for the rate-limit reasons; a 401 with
``WWW-Authenticate: Bearer``) and the Event resource's ``dateTime`` (RFC 3339).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Recorded:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0

    @property
    def api(self) -> bool:
        return self.path.startswith("/calendar/v3/")


class Refusal(Exception):
    """An error answer: HTTP status, Google reason and message."""

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.extra = status, reason, message, extra


@dataclass
class Calendar:
    owner: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # event id -> clock of its last write
    meet_pending: dict[str, int] = field(default_factory=dict)  # id -> reads still pending


def parse_time(value: str) -> datetime:
    """An RFC 3339 time of a request, in UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def stamp(moment: datetime) -> str:
    """``moment`` as Google writes times (UTC, milliseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error_answer(refusal: Refusal) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The answer to ``refusal``: status, Google's JSON error body, extra headers."""
    status = refusal.status
    extra: dict[str, str] = refusal.extra.pop("headers", {})
    error = {"domain": "global", "reason": refusal.reason, "message": refusal.message}
    if refusal.reason in ("rateLimitExceeded", "userRateLimitExceeded"):
        error["domain"] = "usageLimits"
    error.update(refusal.extra)
    answer = {"error": {"errors": [error], "code": status, "message": refusal.message}}
    if status == 401:
        extra["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return status, answer, extra
