"""Free/busy from Google Calendar's ``freebusy.query``, answered per calendar (DESIGN §5).

Vendor documents (Google Calendar API v3):

* "Freebusy: query" (developers.google.com/workspace/calendar/api/v3/reference/freebusy/query)
  and the discovery document googleapiclient ships (``calendar.v3.json``, schemas
  ``FreeBusyRequest``, ``FreeBusyResponse``, ``FreeBusyCalendar``, ``Error``).  The request
  is ``{"timeMin", "timeMax", "items": [{"id"}]}`` (``calendarExpansionMax``: at most 50
  calendars); the answer is ``{"kind": "calendar#freeBusy", "timeMin", "timeMax",
  "calendars": {ID: {"busy": [{"start", "end"}], "errors": [{"domain", "reason"}]}}}``.
  ``errors`` are "optional error(s) (if computation for the calendar failed)"; the
  reasons named are ``notFound``, ``internalError`` ("the API service has encountered an
  internal error"), ``groupTooBig`` and ``tooManyCalendarsRequested``, and "additional error
  types may be added in the future, so clients should gracefully handle" them.
* "Handle API errors" (developers.google.com/workspace/calendar/api/guides/errors):
  ``backendError`` (500) and the rate limits (403 ``rateLimitExceeded`` /
  ``userRateLimitExceeded``, 429) are transient, to be retried with exponential back-off.
  Google gives a calendar whose free/busy it will not show as ``notFound``: it has no
  per-calendar "access denied".

One calendar's entry in an answer for the piece ``[start, end)`` is read as:

==========================================  ============================================
entry                                       result for that calendar
==========================================  ============================================
``errors`` naming ``notFound``              :class:`NotFound` (unknown, or not shared)
``errors``, every reason transient          :class:`Unavailable`, retryable, no
(:data:`TRANSIENT_REASONS`)                 ``retry_after`` (Google names no wait)
``errors``, any other reason                :class:`ConnectorError` (kind ``failed``)
``busy`` (a list) and no ``errors``         :class:`FreeBusy`, spans clipped to the piece
neither ``busy`` nor ``errors``             ``FreeBusy.no_data(start, end)``: unknown,
                                            never free
missing from the answer, or unreadable      :class:`ConnectorError`: the answer cannot be
                                            read for it (the caller keeps the calendar's
                                            last known busy times, DESIGN §5)
==========================================  ============================================

``errors`` win over ``busy`` (Google sends ``"busy": []`` beside them).  Every error is a
new instance whose message names its own calendar id only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connectors.base import CalendarRef, FreeBusy, FreeBusyAnswer
from connectors.google_http import UnknownSubject
from connectors.google_wire import RATE_REASONS, parse_time, rfc3339
from ptm_sync.core.errors import ConnectorError, NotFound, Unavailable
from ptm_sync.core.model import Busy, Interval, as_utc

log = logging.getLogger(__name__)

#: freebusy.query: at most 50 calendars a call (the reference's calendarExpansionMax).
MAX_CALENDARS = 50
#: freebusy.query: the longest span Google answers (not in the reference; Google answers
#: "The requested time range is too long" past it).
MAX_SPAN = timedelta(days=90)
#: Per-calendar reasons that say "this calendar's part of Google failed now": the Error
#: schema's ``internalError``, and what "Handle API errors" says to retry with back-off.
TRANSIENT_REASONS = frozenset(
    {"internalError", "backendError", "serviceUnavailable", *RATE_REASONS}
)

#: ``query(subject, body)``: one freebusy.query acting as ``subject`` (a teacher's address),
#: its JSON answer.  Raises :class:`UnknownSubject` when Google knows no such user, and the
#: account-wide errors (AuthFailed, Unavailable) as they come.
Query = Callable[[str, dict[str, Any]], dict[str, Any]]

Result = FreeBusy | ConnectorError


class GoogleFreeBusy:
    """Free/busy of one Google account's calendars, in batches of :data:`MAX_CALENDARS` and
    pieces of :data:`MAX_SPAN`, each calendar with its own answer.

    Impersonation (domain-wide delegation): a batch is asked as its first teacher whom
    Google knows as a user.  A teacher it does not know (the token endpoint's
    ``invalid_grant`` "Invalid email or User ID") is kept in :attr:`not_users` for the
    life of the connector and never tried as the acting user again, so the fallback
    costs at most one refused token request per such teacher, once, not one per pass.
    Their calendar is still asked about (Google answers ``notFound`` for it).  When nobody
    of a batch can be acted as, each calendar of it is its own :class:`NotFound`, and later
    passes make no request for that batch.
    """

    def __init__(self, query: Query) -> None:
        self._query = query
        #: Lower-case addresses Google knows no user of (never acted as again).
        self.not_users: set[str] = set()

    def read(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each calendar's :class:`FreeBusy` in ``[start, end)`` (busy and unknown spans in
        UTC, joined across the 90-day cuts) or its own error (table in the module doc).  A
        calendar whose piece failed is not asked about in the later pieces.

        Requests: one freebusy.query per batch of 50 and piece of 90 days (fewer when every
        calendar of a batch has failed already).

        Raises:
            AuthFailed: the key, the delegation or the token was refused (account-wide).
            Unavailable: Google cannot be reached, or answers 5xx/429 for the whole call
                after the retry policy's waits.
            ConnectorError: the whole call was refused otherwise (400, 404 at api_url).
        """
        refs = list(dict.fromkeys(calendars))
        pieces = list(_pieces(as_utc(start), as_utc(end)))
        gathered = {ref: _Gathered() for ref in refs}
        for first in range(0, len(refs), MAX_CALENDARS):
            batch = refs[first : first + MAX_CALENDARS]
            for piece_start, piece_end in pieces:
                asked = [ref for ref in batch if gathered[ref].error is None]
                if not asked:
                    break
                for ref, result in self._piece(asked, piece_start, piece_end).items():
                    gathered[ref].add(result)
        return {ref: gathered[ref].result() for ref in refs}

    def _piece(
        self, asked: list[CalendarRef], start: datetime, end: datetime
    ) -> dict[CalendarRef, Result]:
        body = {
            "timeMin": rfc3339(start),
            "timeMax": rfc3339(end),
            "items": [{"id": ref.calendar} for ref in asked],
        }
        answer = self._as_someone(asked, body)
        if answer is None:
            return {
                ref: NotFound(f"calendar {ref.calendar!r}: Google knows no such user")
                for ref in asked
            }
        calendars = answer.get("calendars")
        found = (
            {str(key).lower(): value for key, value in calendars.items()}
            if isinstance(calendars, Mapping)
            else {}
        )
        results = {
            ref: read_entry(ref.calendar, found.get(ref.calendar.lower()), start, end)
            for ref in asked
        }
        for result in results.values():
            if isinstance(result, ConnectorError):
                log.debug("free/busy: %s", result)
        return results

    def _as_someone(self, asked: list[CalendarRef], body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to ``body``, acting as the first teacher of ``asked`` whom Google
        knows; None when it knows none of them."""
        for ref in asked:
            subject = ref.calendar.lower()
            if subject in self.not_users:
                continue
            try:
                return self._query(ref.calendar, body)
            except UnknownSubject:
                self.not_users.add(subject)
                log.info("free/busy: Google knows no user %s to act as; not tried again", subject)
        return None


def read_entry(calendar_id: str, entry: Any, start: datetime, end: datetime) -> Result:
    """One calendar's entry of a freeBusy answer for ``[start, end)``, as the module doc's
    table says; never raises."""
    if not isinstance(entry, Mapping):
        return ConnectorError(
            f"free/busy of {calendar_id}: Google's answer says nothing about this calendar"
        )
    errors = entry.get("errors")
    if errors:
        return _error(calendar_id, errors)
    busy = entry.get("busy")
    if busy is None:
        return FreeBusy.no_data(start, end)
    try:
        return FreeBusy(tuple(_clipped(busy, start, end)))
    except (AttributeError, KeyError, TypeError, ValueError):
        return ConnectorError(f"free/busy of {calendar_id}: Google's busy times cannot be read")


def _error(calendar_id: str, errors: Any) -> ConnectorError:
    """The error of a calendar whose entry carries ``errors`` ([{domain, reason}])."""
    items = errors if isinstance(errors, list) else [errors]
    reasons = [str(e.get("reason") or "") if isinstance(e, Mapping) else "" for e in items]
    said = ", ".join(r or "an error without a reason" for r in reasons)
    if "notFound" in reasons:
        return NotFound(
            f"calendar {calendar_id!r} not found, or its free/busy is not shared "
            "(Google answered notFound)"
        )
    if all(r in TRANSIENT_REASONS for r in reasons):
        return Unavailable(
            f"free/busy of {calendar_id}: Google answered {said} for this calendar "
            "(try again later)"
        )
    return ConnectorError(f"free/busy of {calendar_id}: Google answered {said}")


def _clipped(periods: Any, start: datetime, end: datetime) -> Iterator[Busy]:
    """Busy spans from ``[{"start", "end"}]`` (RFC 3339), clipped to ``[start, end)``.

    Google's free/busy has no tentative flag: every period it lists is busy.

    Raises:
        TypeError, KeyError, AttributeError, ValueError: not a list of readable periods.
    """
    if not isinstance(periods, list):
        raise TypeError("busy is not a list")
    for period in periods:
        first = max(parse_time(period["start"]), as_utc(start))
        last = min(parse_time(period["end"]), as_utc(end))
        if first < last:
            yield Busy(first, last)


@dataclass
class _Gathered:
    """One calendar's pieces so far: spans, or the first error."""

    busy: list[Busy] = field(default_factory=list)
    unknown: list[Interval] = field(default_factory=list)
    error: ConnectorError | None = None

    def add(self, result: Result) -> None:
        if isinstance(result, ConnectorError):
            self.error = self.error or result
        else:
            self.busy.extend(result.busy)
            self.unknown.extend(result.unknown)

    def result(self) -> Result:
        if self.error is not None:
            return self.error
        busy = [Busy(a, b) for a, b in _joined((b.start, b.end) for b in self.busy)]
        unknown = [Interval(a, b) for a, b in _joined((u.start, u.end) for u in self.unknown)]
        return FreeBusy(tuple(busy), tuple(unknown))


def _pieces(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` cut into pieces of at most :data:`MAX_SPAN`."""
    while start < end:
        stop = min(end, start + MAX_SPAN)
        yield start, stop
        start = stop


def _joined(spans: Iterator[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Spans with those that touch or overlap joined, sorted by start (a span across a
    90-day cut comes back as two)."""
    joined: list[tuple[datetime, datetime]] = []
    for first, last in sorted(spans):
        if joined and first <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], last))
        else:
            joined.append((first, last))
    return joined
