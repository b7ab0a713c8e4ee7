"""One destination's outage delays nobody else's work (DESIGN §6), and delivery catches up.

Real servers behind the fault-injecting proxy: Radicale for the teachers' calendars and an
aiosmtpd sink for the parents' email, on SQLite and PostgreSQL.  With the calendar server
frozen (it accepts connections and never answers), every email still goes out while the
calendar write hangs; with the mail server half-open, every calendar write still happens
while an email hangs.  When the frozen server starts refusing, its breaker opens after
:data:`~ptm_sync.dispatch.THRESHOLD` outages and its other rows wait untried instead of each
waiting out a timeout.  When the fault clears, the next pass delivers the rest: the sink and
Radicale then hold exactly what the database says, each email once.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from connectors import caldav_http
from connectors.base import CalendarRef
from ptm_sync import outbox
from ptm_sync.config import parse
from ptm_sync.dispatch import THRESHOLD
from ptm_sync.model import MeetingState
from ptm_sync.services import flush_outbox
from ptm_sync.store import Database, Meeting, Outbox
from ptm_sync.sync import Connectors, opened
from tests.support.booking import ADA, ALAN, PAT, SAM, SeededSchool, config_text
from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar
from tests.support.faultproxy import FaultProxy
from tests.support.mailservers import SmtpSink

pytestmark = pytest.mark.radicale

#: Hang guards only: a fault here ends when the test says so, never by a timeout.
GUARD = 60.0
#: Timeouts far beyond the guard, so that only the test's own commands end a hang.
NEVER = 600.0


def _via(proxy: FaultProxy, url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{proxy.host}:{proxy.port}").geturl()


def wait_until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


@dataclass
class Wired:
    """The test school, its calendars on Radicale and its mail to the sink, each through
    a proxy; a clock that moves on an hour per pass (past any retry's backoff)."""

    school: SeededSchool
    server: EmbeddedCalDAV
    calendars: dict[str, str]  # teacher -> calendar URL on the server itself
    caldav: FaultProxy
    smtp: FaultProxy
    sink: SmtpSink
    clock_at: datetime
    reports: list[outbox.FlushReport] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.school.db

    def clock(self) -> datetime:
        return self.clock_at

    def flush(self) -> outbox.FlushReport:
        self.clock_at += timedelta(hours=1)
        with opened(self.school.config) as connectors:
            report = flush_outbox(self.db, self.school.config, connectors, self.clock)
        self.reports.append(report)
        return report

    def flush_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.flush, daemon=True)
        thread.start()
        return thread

    def rows(self, kind: str) -> list[Outbox]:
        with self.db.read() as s:
            return list(s.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)))

    def received_ids(self) -> list[str]:
        found = []
        for mail in self.sink.received:
            message = email.message_from_bytes(mail.raw, policy=email.policy.default)
            found.append(str(message["Message-ID"]))
        return found

    def events(self) -> dict[str, str]:
        """UID -> href of every event in the teachers' calendars, read past the proxy."""
        direct = parse(
            config_text(
                caldav_url=self.server.url,
                caldav_user=self.server.username,
                caldav_password=self.server.password or "",
            )
        )
        found: dict[str, str] = {}
        connectors = Connectors(direct)
        try:
            for calendar in self.calendars.values():
                changes = connectors.get("dav").changes(CalendarRef("dav", calendar), None)
                for remote in changes.changed:
                    for event in Calendar.from_ical(remote.ics).events:
                        assert str(event["UID"]) not in found, "two objects hold one UID"
                        found[str(event["UID"])] = urlsplit(remote.href).path
        finally:
            connectors.close()
        return found

    def confirmed_uids(self) -> set[str]:
        with self.db.read() as s:
            return set(
                s.scalars(select(Meeting.uid).where(Meeting.state == MeetingState.CONFIRMED.value))
            )

    def assert_caught_up(self) -> None:
        """Nothing lost, nothing twice: the servers hold what the database says."""
        rows = self.rows(outbox.EMAIL) + self.rows(outbox.CALENDAR)
        assert {r.state for r in rows} == {outbox.DONE}
        received = self.received_ids()
        assert len(received) == len(set(received)), "an email was sent twice"
        assert sorted(received) == sorted(r.key.removeprefix("email:") for r in self.rows("email"))
        assert set(self.events()) == self.confirmed_uids()
        with self.db.read() as s:
            hrefs = {m.uid: m.remote_href for m in s.scalars(select(Meeting))}
        for uid, href in self.events().items():
            assert urlsplit(hrefs[uid] or "").path == href
        # One meeting's emails reached the parent in the order they were queued.
        order = {key: n for n, key in enumerate(received)}
        by_meeting: dict[int | None, list[int]] = {}
        for row in self.rows(outbox.EMAIL):
            by_meeting.setdefault(row.meeting_id, []).append(order[row.key.removeprefix("email:")])
        assert all(seen == sorted(seen) for seen in by_meeting.values())


@pytest.fixture
def wired(
    db: Database,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Wired]:
    monkeypatch.setattr(caldav_http, "READ_SECONDS", NEVER)
    sink = smtp_sink()
    dav_origin = urlsplit(radicale_server.url)
    caldav = fault_proxy((dav_origin.hostname or "127.0.0.1", dav_origin.port or 80))
    smtp = fault_proxy((sink.host, sink.port))
    calendars = {ADA: make_calendar(radicale_server), ALAN: make_calendar(radicale_server)}
    school = SeededSchool.create(
        db,
        calendars={t: _via(caldav, url) for t, url in calendars.items()},
        caldav_url=_via(caldav, radicale_server.url),
        caldav_user=radicale_server.username,
        caldav_password=radicale_server.password or "",
        mail=f'[mail.smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\ntimeout = {NEVER}',
    )
    # Confirmed meetings (a calendar write each, and emails) and, queued after them,
    # invitations: delivered in queue order, those emails would wait behind the calendar.
    for teacher, guardian, slot in [(ADA, PAT, 0), (ADA, SAM, 2), (ALAN, PAT, 4)]:
        meeting = school.propose(teacher, guardian, slot=slot)
        assert school.deliver(school.reply(meeting, "ACCEPTED")).reason == "accepted"
    school.propose(ADA, SAM, slot=0, period_id="open-day")
    school.propose(ALAN, PAT, slot=2, period_id="open-day")
    # And a change to a confirmed meeting: more calendar rows than the breaker's threshold.
    with db.write() as s:
        first = s.scalars(select(Meeting).where(Meeting.state == "confirmed")).first()
        assert first is not None
        for n in range(2):
            first.location = f"Room {n}"
            outbox.enqueue(
                s,
                key=f"calendar:{first.uid}:moved:{n}",
                kind=outbox.CALENDAR,
                payload={"meeting_id": first.id},
                now=school.now + timedelta(minutes=20),
                meeting_id=first.id,
            )
    yield Wired(school, radicale_server, calendars, caldav, smtp, sink, school.now)


def test_a_frozen_calendar_server_holds_up_no_email(wired: Wired) -> None:
    calendar_rows = len(wired.rows(outbox.CALENDAR))
    emails = len(wired.rows(outbox.EMAIL))
    assert calendar_rows > THRESHOLD
    assert min(r.id for r in wired.rows(outbox.CALENDAR)) < max(
        r.id for r in wired.rows(outbox.EMAIL)
    )
    wired.caldav.freeze()
    flushing = wired.flush_in_background()
    wired.caldav.wait_stalled(1)  # a calendar write hangs on the frozen server...
    # ...and every email goes out meanwhile (a meeting's next email after its first).
    wait_until("every email sent", lambda: len(wired.sink.received) == emails)
    assert flushing.is_alive() and wired.caldav.stalled >= 1
    assert all(r.attempts == 0 for r in wired.rows(outbox.CALENDAR))  # nothing gave up yet

    wired.caldav.reset()  # the server now cuts every connection: outages, in a row
    flushing.join(GUARD)
    assert not flushing.is_alive()
    report = wired.reports[-1]
    tried = [r for r in wired.rows(outbox.CALENDAR) if r.attempts]
    assert len(tried) == THRESHOLD  # then the breaker opened: the rest were not tried
    assert report.deferred == {"calendar account 'dav'": calendar_rows - THRESHOLD}
    assert report.delivered == emails

    wired.caldav.clear()
    assert wired.flush().delivered == calendar_rows
    wired.assert_caught_up()


def test_a_half_open_mail_server_holds_up_no_calendar_write(wired: Wired) -> None:
    wired.smtp.half_open()
    flushing = wired.flush_in_background()
    wired.smtp.wait_stalled(1)  # an email hangs on a server that never answers...
    # ...and every calendar write is done meanwhile.
    wait_until(
        "every calendar row delivered",
        lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
    )
    assert flushing.is_alive() and wired.smtp.stalled >= 1
    assert set(wired.events()) == wired.confirmed_uids()
    assert wired.sink.received == []

    wired.smtp.reset()
    flushing.join(GUARD)
    assert not flushing.is_alive()
    report = wired.reports[-1]
    assert len([r for r in wired.rows(outbox.EMAIL) if r.attempts]) == THRESHOLD
    smtp_name = f"SMTP server {wired.smtp.host}:{wired.smtp.port}"
    assert list(report.deferred) == [smtp_name]
    assert report.deferred[smtp_name] > 0

    wired.smtp.clear()
    while any(r.state == outbox.PENDING for r in wired.rows(outbox.EMAIL)):
        assert wired.flush().delivered > 0  # each pass sends the next email of each meeting
    wired.assert_caught_up()


def test_a_slow_server_delays_but_loses_nothing(wired: Wired) -> None:
    wired.caldav.delay(0.05)
    wired.smtp.delay(0.05)
    while any(r.state == outbox.PENDING for r in wired.rows(outbox.EMAIL)):
        report = wired.flush()
        assert report.dead == 0 and report.deferred == {}
    wired.assert_caught_up()
