"""Throttling shared by the HTTP connectors: Retry-After, back-off and in-flight limits.

* Graph and Google answer 429 (and 503) with ``Retry-After`` (RFC 9110 §10.2.3: seconds or
  an HTTP date); Google also answers 403 ``rateLimitExceeded`` / ``userRateLimitExceeded``
  and asks for exponential back-off (Google Calendar API, "Handle API errors"); Exchange
  answers ``ErrorServerBusy`` with a ``BackOffMilliseconds`` hint.
* A short wait is taken inside the call (:class:`RetryPolicy`); a long one is not: the call
  raises :class:`~ptm_sync.core.errors.Unavailable` carrying ``retry_after``, and the outbox or
  the next sync pass comes back then.
* Graph allows at most four requests in flight per mailbox (Microsoft Graph throttling
  limits, Outlook service): :class:`InFlight` holds a connector to that.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from ptm_sync.core.errors import Unavailable

T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date); None
    when absent or unreadable.  Never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class RetryPolicy:
    """How long a connector waits by itself before giving the failure back.

    ``attempts`` tries in all; a wait the server names (Retry-After) is honoured when it is at
    most ``max_wait`` seconds, otherwise the call gives up at once with that delay; without a
    named wait the delay doubles from ``base`` (with jitter, Google's advice), capped at
    ``max_wait``.  ``sleep`` is the clock (tests pass one that records the waits).
    """

    attempts: int = 4
    base: float = 1.0
    max_wait: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    #: Wait only when the server named the wait (Retry-After); otherwise give up at once.
    only_named: bool = False

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """The wait before try ``attempt + 1`` (attempt counts from 1), or None to give up."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        if self.only_named:
            return None
        wait = self.base * (2 ** (attempt - 1))
        return min(self.max_wait, wait + random.uniform(0, wait / 2))

    def run(self, call: Callable[[], T]) -> T:
        """``call()``, again after a wait while it raises :class:`Unavailable`; the last
        :class:`Unavailable` (carrying the server's ``retry_after``) when the waits run out."""
        attempt = 1
        while True:
            try:
                return call()
            except Unavailable as exc:
                wait = self.delay(attempt, exc.retry_after)
                if wait is None:
                    raise
                self.sleep(wait)
                attempt += 1


class InFlight:
    """At most ``limit`` requests in flight per key (Graph: four per mailbox)."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self.peak: dict[str, int] = {}
        self._now: dict[str, int] = {}

    @contextmanager
    def slot(self, key: str) -> Iterator[None]:
        with self._lock:
            gate = self._gates.setdefault(key.lower(), threading.BoundedSemaphore(self.limit))
        with gate:
            with self._lock:
                self._now[key] = self._now.get(key, 0) + 1
                self.peak[key] = max(self.peak.get(key, 0), self._now[key])
            try:
                yield
            finally:
                with self._lock:
                    self._now[key] -= 1
