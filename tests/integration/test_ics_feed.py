"""ICS feeds (issue 8, item 5): read with conditional GETs, split into one object per UID,
and a school events feed (``blocks = "everyone"``) that blocks every teacher."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connectors.base import CalendarRef, Capability, FreeBusy, Horizon, open_connector
from connectors.ics_feed import split_feed
from ptm_sync.adapters.store import Database, SchoolBusy, Teacher
from ptm_sync.app.read.availability import teacher_times
from ptm_sync.app.sync import Connectors
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import (
    AccessDenied,
    AuthFailed,
    BadCalendarData,
    ConnectorError,
    NotFound,
    Unavailable,
    Unsupported,
)
from ptm_sync.core.ical.busy import event_uid
from ptm_sync.core.model import Busy
from tests.support.booking import ADA, ALAN, SeededSchool
from tests.support.feed_server import Feed, FeedServer, vevent

START = datetime(2027, 4, 13, 13, 0, tzinfo=UTC)
HORIZON = Horizon(START - timedelta(days=1), START + timedelta(days=30))


def feed_connector(server: FeedServer, **keys: str):  # type: ignore[no-untyped-def]
    account = AccountConfig(id="events", type="ics", url=server.url + "events.ics", **keys)
    return open_connector(account, ZoneInfo("UTC"), HORIZON)


def test_an_unchanged_feed_costs_one_conditional_get_answered_304(feed_server: FeedServer) -> None:
    feed_server.add("events.ics", vevent(START, START + timedelta(hours=2)))
    connector = feed_connector(feed_server)
    ref = CalendarRef("events", feed_server.url + "events.ics")
    first = connector.changes(ref, None)
    assert first.full and len(first.changed) == 1 and first.token
    again = connector.changes(ref, first.token)
    assert again.changed == () and not again.full and again.token == first.token
    (_, _, tag1, since1), (_, _, tag2, since2) = feed_server.log
    assert (tag1, since1) == ("", "")
    assert tag2 == feed_server.feeds["events.ics"].etag() and since2  # both validators sent
    feed_server.add(
        "events.ics", vevent(START + timedelta(days=1), START + timedelta(days=1, hours=1))
    )
    changed = connector.changes(ref, again.token)
    assert changed.full and len(changed.changed) == 2  # the whole feed, anew
    assert {e.etag for e in changed.changed} >= {first.changed[0].etag}  # unchanged object kept


def test_a_recurring_event_and_its_exceptions_stay_one_object() -> None:
    feed = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        "BEGIN:VEVENT\r\nUID:weekly@school.test\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20270405T180000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
        "SUMMARY:Choir\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:weekly@school.test\r\nDTSTAMP:20270101T000000Z\r\n"
        "RECURRENCE-ID;TZID=Europe/Berlin:20270412T180000\r\n"
        "DTSTART;TZID=Europe/Berlin:20270412T190000\r\nDURATION:PT1H\r\nSUMMARY:Choir\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:once@school.test\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART:20270414T160000Z\r\nDTEND:20270414T170000Z\r\nSUMMARY:Open day\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    objects = split_feed("https://school.test/events.ics", feed)
    assert [event_uid(o.ics) for o in objects] == ["once@school.test", "weekly@school.test"]
    weekly = objects[1].ics
    assert weekly.count("BEGIN:VEVENT") == 2 and "BEGIN:VTIMEZONE" in weekly
    assert objects[1].href == "https://school.test/events.ics#weekly@school.test"
    assert split_feed("https://school.test/events.ics", feed) == objects  # stable etags


def test_a_feed_is_read_only_and_says_what_is_wrong(feed_server: FeedServer) -> None:
    connector = feed_connector(feed_server)
    ref = CalendarRef("events", "")
    with pytest.raises(NotFound):
        connector.changes(ref, None)
    assert len(connector.check([ref])) == 1 and "HTTP 404" in connector.check([ref])[0]
    with feed_server.lock:
        feed_server.feeds["events.ics"] = Feed()
    assert connector.check([ref]) == []
    assert Capability.READ_ONLY in connector.capabilities
    with pytest.raises(Unsupported):
        connector.delete_event(ref, None)  # type: ignore[arg-type]
    feed_server.fail_next(401)
    with pytest.raises(AuthFailed):
        connector.changes(ref, None)
    with feed_server.lock:
        feed_server.feeds["events.ics"] = Feed(raw=b"<!doctype html><html>Log in</html>")
    with pytest.raises(BadCalendarData):
        connector.changes(ref, None)
    assert "not an iCalendar feed" in connector.check([ref])[0]


def test_an_unreachable_feed_is_one_plain_line() -> None:
    account = AccountConfig(
        id="events", type="ics", url="http://127.0.0.1:9/events.ics?token=s3cret"
    )
    connector = open_connector(account, ZoneInfo("UTC"), HORIZON)
    (line,) = connector.check()
    assert "cannot reach" in line and "s3cret" not in line and "0x" not in line


def test_the_school_events_feed_blocks_every_teacher(db: Database, feed_server: FeedServer) -> None:
    school = SeededSchool.create(db)
    slot = school.slot(4)
    feed_server.add("events.ics", vevent(slot.start, slot.end, summary="Fire drill"))
    events = AccountConfig(
        id="events", type="ics", url=feed_server.url + "events.ics", blocks="everyone"
    )
    config = replace(school.config, accounts=(*school.config.accounts, events))
    connectors = Connectors(config)
    assert Capability.BLOCKS_EVERYONE in connectors.get("events").capabilities

    # Only the feed here: the teachers' own calendars are not part of this test.
    from ptm_sync.app.sync.school_feeds import sync_school_feeds

    results = sync_school_feeds(db, config, connectors, school.now)
    assert [(r.teacher, r.error, r.busy) for r in results] == [("school events (events)", "", 1)]
    with db.read() as session:
        assert session.scalars(select(SchoolBusy)).one().start == slot.start
        teachers = list(session.scalars(select(Teacher)))
        times = teacher_times(session, config.period("spring"), teachers)
    for t in times:
        assert any(b.start <= slot.start and slot.end <= b.end for b in t.busy), t.teacher.email
    assert {t.teacher.email for t in times} == {ADA, ALAN}
    assert slot.start not in school.free_starts(ADA) and slot.start not in school.free_starts(ALAN)

    # An unchanged feed is one 304 and keeps what it had.
    again = sync_school_feeds(db, config, connectors, school.now)
    assert again[0].busy == 1 and feed_server.log[-1][2]  # sent If-None-Match
    with db.read() as session:
        assert len(session.scalars(select(SchoolBusy)).all()) == 1


# --- free/busy per feed, and what a server that refuses us wants (issue 14) ------------


def test_each_feeds_error_stays_its_own(feed_server: FeedServer) -> None:
    hour = timedelta(hours=1)
    for name, offset in (("ada.ics", 0), ("bob.ics", 1), ("carol.ics", 2), ("dan.ics", 3)):
        feed_server.add(name, vevent(START + offset * hour, START + (offset + 1) * hour))
    with feed_server.lock:
        feed_server.feeds["page.ics"] = Feed(raw=b"<!doctype html><html>Log in</html>")
    feed_server.fail_path("bob.ics", 403)
    feed_server.fail_path("carol.ics", 500)
    account = AccountConfig(id="feeds", type="ics", url=feed_server.url)
    connector = open_connector(account, ZoneInfo("UTC"), HORIZON)
    connector.retry.sleep = lambda seconds: None  # type: ignore[attr-defined]
    refs = [CalendarRef("feeds", n) for n in ("ada.ics", "bob.ics", "carol.ics", "gone.ics")]
    page, other_host = (
        CalendarRef("feeds", "page.ics"),
        CalendarRef("feeds", "http://127.0.0.1:9/x.ics"),
    )
    ada, bob, carol, gone = refs
    found = connector.free_busy(
        [*refs, page, other_host, CalendarRef("feeds", "dan.ics")], START, START + 5 * hour
    )
    assert found[ada] == FreeBusy((Busy(START, START + hour),))
    assert found[CalendarRef("feeds", "dan.ics")] == FreeBusy(
        (Busy(START + 3 * hour, START + 4 * hour),)
    )
    assert isinstance(found[bob], AccessDenied) and not getattr(found[bob], "retryable", False)
    unavailable = found[carol]
    assert isinstance(unavailable, Unavailable) and unavailable.retryable
    assert isinstance(found[gone], NotFound)
    assert type(found[page]) is ConnectorError and "not an iCalendar feed" in str(found[page])
    # A teacher's feed on another host that is down is that teacher's, not the account's.
    assert isinstance(found[other_host], Unavailable)
    for failed, name in ((bob, "bob"), (carol, "carol"), (gone, "gone")):
        assert all(other not in str(found[failed]) for other in ("ada", "dan") if other != name)


def test_the_accounts_own_server_throttling_us_raises(feed_server: FeedServer) -> None:
    feed_server.add("ada.ics", vevent(START, START + timedelta(hours=1)))
    connector = open_connector(
        AccountConfig(id="feeds", type="ics", url=feed_server.url), ZoneInfo("UTC"), HORIZON
    )
    feed_server.fail_path("ada.ics", 503, {"Retry-After": "3600"})
    with pytest.raises(Unavailable) as caught:
        connector.free_busy([CalendarRef("feeds", "ada.ics")], START, START + timedelta(hours=2))
    assert caught.value.retry_after == 3600


@pytest.mark.parametrize(
    ("challenges", "sentence"),
    [
        (
            [("WWW-Authenticate", 'Bearer realm="feeds", error="invalid_token"')],
            "the server accepts only OAuth tokens (Bearer), not a user name and password "
            "(Basic); ptm-sync cannot sign in that way: "
            "ask the server's administrator for an app password",
        ),
        (
            [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")],
            "the server accepts only Windows sign-in (Negotiate/NTLM), not a user name and "
            "password (Basic); ptm-sync cannot sign in that way: "
            "ask the server's administrator for an app password",
        ),
        (
            [("WWW-Authenticate", 'Basic realm="feeds"')],
            "the server refused the user name or password",
        ),
        ([], "the server refused the user name or password"),
    ],
    ids=["bearer-only", "negotiate-ntlm", "wrong-password", "no-challenge"],
)
def test_a_refused_feed_says_what_the_server_wants(
    feed_server: FeedServer, challenges: list[tuple[str, str]], sentence: str
) -> None:
    feed_server.add("private/ada-7f3e9.ics", vevent(START, START + timedelta(hours=1)))
    feed_server.fail_path("private/ada-7f3e9.ics", 401, challenges)
    account = AccountConfig(
        id="feeds",
        type="ics",
        url=feed_server.url,
        username="school",
        password=Secret(key="accounts.password", value="s3cret"),
    )
    connector = open_connector(account, ZoneInfo("UTC"), HORIZON)
    ref = CalendarRef("feeds", "private/ada-7f3e9.ics")
    with pytest.raises(AuthFailed) as caught:
        connector.free_busy([ref], START, START + timedelta(hours=1))  # the account's: raised
    assert str(caught.value) == f"account 'feeds' (127.0.0.1): {sentence}"
    assert connector.check([ref]) == [str(caught.value)]  # the same sentence, said once
    with pytest.raises(AuthFailed) as again:
        connector.changes(ref, None)
    assert "ada-7f3e9" not in str(again.value)  # never the teacher's feed (/healthz shows it)


def test_a_feed_that_wants_a_login_the_account_lacks_says_so(feed_server: FeedServer) -> None:
    feed_server.fail_path("events.ics", 401, {"WWW-Authenticate": 'Basic realm="intranet"'})
    connector = feed_connector(feed_server)
    with pytest.raises(AuthFailed) as caught:
        connector.changes(CalendarRef("events", ""), None)
    assert str(caught.value) == (
        "account 'events' (127.0.0.1): the server asks for a user name and password and the "
        "account gives none"
    )
