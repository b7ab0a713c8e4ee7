"""The test school wired to real servers through fault proxies, for the outbox fault tests.

:func:`wire` seeds a :class:`~tests.support.booking.SeededSchool` whose teachers' calendars
live on Radicale and whose mail goes to an aiosmtpd sink, each behind a
:class:`~tests.support.faultproxy.FaultProxy`; it queues confirmed meetings (calendar writes
and emails), later invitations and extra calendar rows.  :class:`Wired` runs the outbox,
reads back what the servers hold and checks that they hold exactly what the database says.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from connectors.base import CalendarRef
from ptm_sync.adapters.store import Database, Meeting, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.services import flush_outbox
from ptm_sync.app.sync import Connectors, opened
from ptm_sync.config.settings import parse
from ptm_sync.core.model import MeetingState
from tests.support.booking import ADA, ALAN, NOW, PAT, SAM, SeededSchool, config_text
from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar
from tests.support.faultproxy import FaultProxy
from tests.support.mailservers import SmtpSink
from tests.support.servers import free_port

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
    config_text: str = ""
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

    def config_file(self, folder: Path, database_url: str, extra: str = "") -> Path:
        """The same school as a config file for `ptm-sync` processes; ``extra``: more
        tables (TOML) at the end."""
        text = self.config_text.replace(
            "[web]\n", f'[web]\nlisten = "127.0.0.1:{free_port()}"\n', 1
        )
        text += f'\n[database]\nurl = "{database_url}"\n{extra}'
        path = folder / "ptm-sync.toml"
        path.write_text(text, encoding="utf-8")
        return path


def wire(
    db: Database,
    server: EmbeddedCalDAV,
    sink: SmtpSink,
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    *,
    now: datetime = NOW,
    smtp_timeout: float = NEVER,
) -> Wired:
    """The school (see the module docstring) with its outbox full, nothing delivered yet."""
    dav_origin = urlsplit(server.url)
    caldav = fault_proxy((dav_origin.hostname or "127.0.0.1", dav_origin.port or 80))
    smtp = fault_proxy((sink.host, sink.port))
    calendars = {ADA: make_calendar(server), ALAN: make_calendar(server)}
    settings = {
        "calendars": {t: _via(caldav, url) for t, url in calendars.items()},
        "caldav_url": _via(caldav, server.url),
        "caldav_user": server.username,
        "caldav_password": server.password or "",
        "mail": f'[mail.smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\ntimeout = {smtp_timeout}',
    }
    school = SeededSchool.create(db, now=now, **settings)
    text = config_text(**{k: v for k, v in settings.items() if k != "calendars"})
    # Confirmed meetings (a calendar write each, and emails) and, queued after them,
    # invitations: delivered in queue order, those emails would wait behind the calendar.
    for teacher, guardian, slot in [(ADA, PAT, 0), (ADA, SAM, 2), (ALAN, PAT, 4)]:
        meeting = school.propose(teacher, guardian, slot=slot)
        assert school.deliver(school.reply(meeting, "ACCEPTED")).reason == "accepted"
    school.propose(ADA, SAM, slot=0, period_id="open-day")
    school.propose(ALAN, PAT, slot=2, period_id="open-day")
    # And changes to a confirmed meeting: more calendar rows than a breaker's threshold.
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
    return Wired(school, server, calendars, caldav, smtp, sink, school.now, text)
