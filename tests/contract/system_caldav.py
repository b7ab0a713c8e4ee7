"""CalDAV on the real servers: Radicale and Xandikos, embedded on 127.0.0.1.

One calendar's own failure is a status the server answers for that collection alone (CalDAV
asks each calendar with its own request): the recording middleware in front of the server
answers 403 (the account may not read it) or 500 (its part of the server fails, as Radicale
answers for a collection holding an item it cannot read) for that collection's path.
Invitations are stored as Nextcloud/sabre store the teacher's copy
(tests/support/calendar_data.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests
from icalendar import Calendar

from connectors.base import CalendarConnector, CalendarRef, RemoteRef, open_connector
from ptm_sync.core.errors import CalendarProblem
from tests.contract.harness import HORIZON
from tests.support.caldav_servers import (
    EmbeddedCalDAV,
    account_for,
    delete_href,
    make_calendar,
    put_ics,
    start_radicale,
    start_xandikos,
)
from tests.support.calendar_data import sabre_invitation

#: What the server answers for a collection failing alone.
_FAILURES = {
    CalendarProblem.ACCESS_DENIED: "403 Forbidden",
    CalendarProblem.UNAVAILABLE: "500 Internal Server Error",
}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def move_event(server: EmbeddedCalDAV, href: str, start: datetime, end: datetime) -> None:
    """What a teacher's calendar app does when they drag an event: new times, same object."""
    url = urljoin(server.url, href)
    with requests.Session() as http:
        if server.password:
            http.auth = (server.username, server.password)
        calendar = Calendar.from_ical(http.get(url, timeout=10).content)
        for event in calendar.walk("VEVENT"):
            for name, value in (("DTSTART", start), ("DTEND", end)):
                event.pop(name, None)
                event.add(name, value.astimezone(UTC))
        reply = http.put(url, data=calendar.to_ical(), headers={"Content-Type": "text/calendar"})
        reply.raise_for_status()


@dataclass
class CalDAVSystem:
    name: str
    server: EmbeddedCalDAV
    connector: CalendarConnector

    def requests(self) -> int:
        return len(self.server.requests.entries)

    def calendar(self, teacher: str) -> CalendarRef:
        return CalendarRef("dav", make_calendar(self.server, f"{teacher}-{uuid.uuid4().hex[:6]}"))

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        status = "TENTATIVE" if tentative else "CONFIRMED"
        put_ics(
            self.server,
            cal.calendar,
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//teacher//EN\nBEGIN:VEVENT\n"
            f"UID:{uuid.uuid4()}@teacher.test\nDTSTAMP:20270101T000000Z\n"
            f"DTSTART:{_stamp(start)}\nDTEND:{_stamp(end)}\nSUMMARY:Own appointment\n"
            f"STATUS:{status}\nEND:VEVENT\nEND:VCALENDAR\n",
        )

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        move_event(self.server, ref.href, start, end)

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        delete_href(self.server, ref.href)

    def forget_sync_tokens(self) -> bool:
        return False

    def throttle(self, status: int, retry_after: float) -> bool:
        reason = {429: "Too Many Requests", 503: "Service Unavailable"}[status]
        self.server.requests.fail_next(f"{status} {reason}", {"Retry-After": f"{retry_after:g}"})
        return True

    def expire_access_tokens(self) -> bool:
        return False

    def page_size(self, n: int) -> bool:
        return False

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        if problem not in _FAILURES:
            return False
        self.server.requests.fail_path(urlsplit(cal.calendar).path, _FAILURES[problem])
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        return False  # busy time is computed from the events: always known

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        slug = cal.calendar.rstrip("/").rsplit("/", 1)[-1]
        teacher = f"{slug}@school.test"
        uid = f"{uuid.uuid4()}@cloud.school.test"
        invitation = sabre_invitation(uid, start, end, partstat=partstat, teacher=teacher.title())
        put_ics(self.server, cal.calendar, invitation)
        return teacher


@contextmanager
def _running(name: str, server: EmbeddedCalDAV) -> Iterator[CalDAVSystem]:
    connector = open_connector(account_for(server), ZoneInfo("UTC"), HORIZON)
    try:
        yield CalDAVSystem(name, server, connector)
    finally:
        connector.close()
        server.stop()


@contextmanager
def start_radicale_system(tmp_path: Path) -> Iterator[CalDAVSystem]:
    (tmp_path / "radicale").mkdir()
    with _running("radicale", start_radicale(tmp_path / "radicale")) as system:
        yield system


@contextmanager
def start_xandikos_system(tmp_path: Path) -> Iterator[CalDAVSystem]:
    (tmp_path / "xandikos").mkdir()
    with _running("xandikos", start_xandikos(tmp_path / "xandikos")) as system:
        yield system
