"""CalDAV free/busy: each calendar's :class:`FreeBusy`, or that calendar's own error.

Requests, per calendar asked (DESIGN §5):

* local (the default): one calendar-query REPORT (RFC 4791 §7.8) for the objects that
  overlap the range, expanded here by :func:`ptm_sync.core.ical.busy.busy_times` (plus one
  calendar-multiget for objects listed without calendar-data).  When an object holds a
  declined invitation, the owner's addresses are looked up once
  (:class:`connectors.caldav_owner.Owners`) so that an occurrence the owner declined is free;
* server: one free-busy-query REPORT (RFC 4791 §7.10), where the feature table says the
  server gets everything right (:mod:`connectors.caldav_features`) or the account forces it.

What is whose: a status the server answers to one calendar's own request is that
calendar's error (:func:`calendar_error`: 404/410 NotFound, 403 AccessDenied, 5xx
Unavailable, an answer that cannot be read ConnectorError), and the other calendars are
read as usual.  What the transport raises is the account's and raises: the server
unreachable, throttling (429, or 503 with Retry-After), refused credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from connectors import dav_xml
from connectors.base import CalendarRef, FreeBusy, FreeBusyAnswer
from connectors.caldav_http import DavTransport, Reply
from connectors.caldav_listing import XML, report_objects
from connectors.caldav_owner import Owners
from connectors.ical import declines, parse_free_busy
from ptm_sync.core.errors import (
    AccessDenied,
    BadCalendarData,
    ConnectorError,
    NotFound,
    Unavailable,
    Unsupported,
)
from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.model import Busy
from ptm_sync.ops.throttle import parse_retry_after

log = logging.getLogger(__name__)


class CalendarFailed(Exception):
    """Carries one calendar's own error out of the code that reads it (never escapes
    :meth:`FreeBusyReader.answer`)."""

    def __init__(self, error: ConnectorError) -> None:
        super().__init__(str(error))
        self.error = error


def calendar_error(reply: Reply, what: str) -> ConnectorError:
    """The error of one calendar whose own request was answered with ``reply.status``.

    404/410 :class:`NotFound` (RFC 4918 §9: no such collection), 403 :class:`AccessDenied`
    (the account may not read it), 5xx :class:`Unavailable` (that part of the server fails;
    ``retry_after`` from Retry-After), 400/405/501 :class:`Unsupported`, anything else a
    :class:`ConnectorError`.  ``what`` names the calendar's request (its URL, no other).
    """
    status = reply.status
    if status in (404, 410):
        return NotFound(f"{what}: not found (HTTP {status})")
    if status == 403:
        return AccessDenied(f"{what}: the server refuses the account access (HTTP 403)")
    if status >= 500:
        retry_after = parse_retry_after(reply.headers.get("retry-after"))
        return Unavailable(f"{what}: HTTP {status}", retry_after=retry_after)
    if status in (400, 405, 501):
        return Unsupported(f"{what}: the server does not support this request (HTTP {status})")
    return ConnectorError(f"{what}: HTTP {status}")


def own(reply: Reply, what: str, ok: Collection[int]) -> Reply:
    """``reply`` when its status is in ``ok``, else raise :class:`CalendarFailed` with the
    calendar's own error (a :data:`connectors.caldav_listing.Check`)."""
    if reply.status in ok:
        return reply
    raise CalendarFailed(calendar_error(reply, what))


class FreeBusyReader:
    """Reads free/busy of an account's collections; see the module docstring."""

    def __init__(self, http: DavTransport, tz: ZoneInfo, owners: Owners) -> None:
        self._http = http
        self._tz = tz
        self._owners = owners

    def answer(
        self,
        collections: Mapping[CalendarRef, str],
        start: datetime,
        end: datetime,
        *,
        server: bool,
    ) -> FreeBusyAnswer:
        """Each calendar (→ its collection URL) with its :class:`FreeBusy` in
        ``[start, end)`` or its own error; ``server``: ask the free-busy-query REPORT.

        Raises:
            Refused, Unavailable, ConnectorError: the transport's, for the whole account.
        """
        found: FreeBusyAnswer = {}
        for calendar, url in collections.items():
            try:
                if server:
                    found[calendar] = self.server(url, start, end)
                else:
                    found[calendar] = self.local(url, start, end)
            except CalendarFailed as failed:
                log.info("free/busy of %s: %s", url, failed.error)
                found[calendar] = failed.error
        return found

    def local(self, url: str, start: datetime, end: datetime) -> FreeBusy:
        """Busy time expanded here from the objects overlapping ``[start, end)``; an
        occurrence the owner declined is free.  An object that cannot be read is skipped
        (logged): one bad object must not hide the rest of the teacher's calendar.

        Raises:
            CalendarFailed: the calendar's own error.
        """
        objects = report_objects(self._http, url, dav_xml.calendar_query(start, end), own)
        owner = self._owners.of(url) if any(declines(o.ics) for o in objects) else frozenset()
        busy: list[Busy] = []
        for remote in objects:
            try:
                busy.extend(busy_times(remote.ics, start, end, self._tz, owner=owner))
            except BadCalendarData as exc:
                log.warning("skipping %s in free/busy: %s", remote.href, exc)
        return FreeBusy(tuple(sorted(busy, key=lambda b: (b.start, b.end, b.tentative))))

    def server(self, url: str, start: datetime, end: datetime) -> FreeBusy:
        """The server's own free-busy-query REPORT (RFC 4791 §7.10).  An answer without a
        VFREEBUSY, or one that cannot be read, is the calendar's error, never free.

        Raises:
            CalendarFailed: the calendar's own error.
        """
        what = f"free-busy-query on {url}"
        body = dav_xml.free_busy_query(start, end)
        reply = own(self._http.request("REPORT", url, body, {**XML, "Depth": "1"}), what, (200,))
        try:
            return parse_free_busy(reply.text, start, end)
        except BadCalendarData as exc:
            raise CalendarFailed(ConnectorError(f"{what}: unreadable answer: {exc}")) from None
