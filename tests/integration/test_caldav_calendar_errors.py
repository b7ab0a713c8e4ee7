"""One calendar's error stays its own (DESIGN §5), on the real Radicale and Xandikos.

CalDAV asks each calendar with its own request, so a status the server answers for one
collection is that calendar's error and the others are read as usual; only what concerns
the account (the server unreachable, throttling, refused credentials) raises.  A failing
collection is the recording middleware answering for that path alone
(``RequestLog.fail_path``), as a server does for a collection the account may not read (403)
or whose part of the server fails (Radicale answers 500 for a collection holding an item it
cannot read).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit

import pytest

from connectors.base import CalendarRef, FreeBusy, FreeBusyAnswer, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.core.errors import (
    AccessDenied,
    CalendarProblem,
    ConnectorError,
    NotFound,
    Unavailable,
)
from tests.support.caldav_servers import EmbeddedCalDAV, account_for, make_calendar, put_ics
from tests.support.calendar_data import SCHOOL_TZ, WINDOW, ics, utc, vevent

HORIZON = Horizon(*WINDOW)


@pytest.fixture(params=["local", "server"])
def connector(
    request: pytest.FixtureRequest, caldav_server: EmbeddedCalDAV
) -> Iterator[CalDAVConnector]:
    """Both ways of reading free/busy: expanded here, and the server's REPORT."""
    account = account_for(caldav_server, freebusy=request.param)
    conn = CalDAVConnector(account, SCHOOL_TZ, HORIZON)
    yield conn
    conn.close()


def three(server: EmbeddedCalDAV) -> tuple[CalendarRef, CalendarRef, CalendarRef]:
    """Three teachers' calendars, each with one appointment of its own (10th, 11th, 12th)."""
    refs = []
    for day in (10, 11, 12):
        url = make_calendar(server)
        put_ics(
            server,
            url,
            ics(vevent(f"own-{day}", f"DTSTART:202703{day}T100000Z", f"DTEND:202703{day}T110000Z")),
        )
        refs.append(CalendarRef("dav", url))
    return refs[0], refs[1], refs[2]


def busy_days(found: FreeBusyAnswer, calendar: CalendarRef) -> list[datetime]:
    answer = found[calendar]
    assert isinstance(answer, FreeBusy), answer
    assert answer.unknown == ()
    return [b.start for b in answer.busy]


def assert_the_others_exact(found: FreeBusyAnswer, ada: CalendarRef, carol: CalendarRef) -> None:
    assert busy_days(found, ada) == [utc("2027-03-10T10:00")]
    assert busy_days(found, carol) == [utc("2027-03-12T10:00")]


def test_a_missing_collection_is_its_own_not_found(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector
) -> None:
    ada, _, carol = three(caldav_server)
    missing = CalendarRef("dav", ada.calendar.rstrip("/") + "-gone/")
    found = connector.free_busy([ada, missing, carol], *WINDOW)
    assert list(found) == [ada, missing, carol]
    not_found = found[missing]
    assert isinstance(not_found, NotFound) and not_found.problem == CalendarProblem.NOT_FOUND
    assert urlsplit(missing.calendar).path in str(not_found)
    assert_the_others_exact(found, ada, carol)


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        ("403 Forbidden", AccessDenied, False),
        ("500 Internal Server Error", Unavailable, True),
        ("503 Service Unavailable", Unavailable, True),  # no Retry-After: not throttling
    ],
)
def test_a_collection_the_server_fails_alone_is_its_own_error(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    status: str,
    error: type[ConnectorError],
    retryable: bool,
) -> None:
    ada, bob, carol = three(caldav_server)
    caldav_server.requests.fail_path(urlsplit(bob.calendar).path, status)
    found = connector.free_busy([ada, bob, carol], *WINDOW)
    failed = found[bob]
    assert isinstance(failed, error), failed
    assert getattr(failed, "retryable", False) is retryable
    for other in (ada, carol):  # bob's error names bob's calendar alone
        assert urlsplit(other.calendar).path not in str(failed)
    assert_the_others_exact(found, ada, carol)


def test_throttling_is_the_accounts_and_raises(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector
) -> None:
    ada, bob, carol = three(caldav_server)
    caldav_server.requests.fail_path(
        urlsplit(bob.calendar).path, "503 Service Unavailable", {"Retry-After": "3600"}
    )
    with pytest.raises(Unavailable) as caught:
        connector.free_busy([ada, bob, carol], *WINDOW)
    assert caught.value.retry_after == 3600


@pytest.mark.parametrize(
    "body",
    [
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nEND:VCALENDAR\r\n",
        "<html><body>Please log in</body></html>",
    ],
    ids=["no VFREEBUSY", "not iCalendar"],
)
def test_a_report_answer_that_says_nothing_is_that_calendars_error_never_free(
    caldav_server: EmbeddedCalDAV, body: str
) -> None:
    ada, bob, carol = three(caldav_server)
    conn = CalDAVConnector(account_for(caldav_server, freebusy="server"), SCHOOL_TZ, HORIZON)
    try:
        caldav_server.requests.fail_path(
            urlsplit(bob.calendar).path, "200 OK", {"Content-Type": "text/calendar"}, body=body
        )
        found = conn.free_busy([ada, bob, carol], *WINDOW)
    finally:
        conn.close()
    assert type(found[bob]) is ConnectorError
    assert found[bob].problem == CalendarProblem.FAILED  # type: ignore[union-attr]
    assert_the_others_exact(found, ada, carol)


def test_check_names_a_collection_the_account_may_not_read(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector
) -> None:
    ada, bob, _ = three(caldav_server)
    caldav_server.requests.fail_path(urlsplit(bob.calendar).path, "403 Forbidden")
    (line,) = connector.check([ada, bob])
    assert line.endswith(f"calendar {bob.calendar!r}: the account may not read it (HTTP 403)")


def test_a_multistatus_that_says_the_collection_is_not_there_is_not_found_not_free(
    caldav_server: EmbeddedCalDAV,
) -> None:
    """Some servers answer a REPORT on a missing collection 207, its own response 404."""
    ada, bob, carol = three(caldav_server)
    path = urlsplit(bob.calendar).path
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response>'
        f"<D:href>{path}</D:href><D:status>HTTP/1.1 404 Not Found</D:status>"
        "</D:response></D:multistatus>"
    )
    caldav_server.requests.fail_path(
        path, "207 Multi-Status", {"Content-Type": "application/xml; charset=utf-8"}, body=body
    )
    conn = CalDAVConnector(account_for(caldav_server, freebusy="local"), SCHOOL_TZ, HORIZON)
    try:
        found = conn.free_busy([ada, bob, carol], *WINDOW)
    finally:
        conn.close()
    assert isinstance(found[bob], NotFound)
    assert_the_others_exact(found, ada, carol)
