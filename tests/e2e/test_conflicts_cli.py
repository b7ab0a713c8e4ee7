"""A teacher's new appointment over a confirmed meeting: staff are told (DESIGN §3
"Teacher-side changes", §7 ``meetings --conflicts``, the staff digest), through the
command line on Radicale.

Pat accepts a meeting with Ada; the outbox writes it into Ada's calendar.  A sync sees our
own event there: no conflict.  Ada then puts a dentist's appointment over the meeting in her
own calendar: the next sync leaves the meeting where it is (nothing is moved silently),
``meetings --conflicts`` lists it with the appointment's time, and the digest tells staff.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV, put_ics
from tests.support.factories import make_invitation
from tests.support.mailservers import SmtpSink
from tests.support.school import TEACHERS, TZ, School, now_utc

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA = TEACHERS[0][0]
PAT = "pat@example.net"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(TZ).strftime("%Y%m%dT%H%M%S")


def appointment(start: datetime, end: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Ada's phone//EN\r\n"
        "BEGIN:VEVENT\r\nUID:dentist-1@ada.example\r\nDTSTAMP:20270101T000000Z\r\n"
        f"DTSTART;TZID={TZ.key}:{_stamp(start)}\r\nDTEND;TZID={TZ.key}:{_stamp(end)}\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_a_busy_event_over_a_confirmed_meeting_is_listed_and_reported(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    school = School(tmp_path, radicale_server, sink.port)
    school.setup()
    meeting, invitation = make_invitation(school, sink, teacher=ADA, guardian=PAT)
    reply = parents.reply("gmail", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert school.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    school.run("outbox", "flush")
    school.run("sync")
    # Our own event in Ada's calendar is no conflict.
    assert school.run("meetings", "--conflicts", "--format", "json").json() == []

    start = datetime.fromisoformat(meeting["start"])
    busy_start, busy_end = start + timedelta(minutes=5), start + timedelta(minutes=45)
    put_ics(radicale_server, school.calendars[ADA], appointment(busy_start, busy_end))
    school.run("sync")

    [listed] = school.run("meetings", "--conflicts", "--format", "json").json()
    assert (listed["id"], listed["state"]) == (meeting["id"], "confirmed")
    assert listed["start"] == meeting["start"]  # nothing moved silently
    assert datetime.fromisoformat(listed["conflict_start"]) == busy_start
    assert datetime.fromisoformat(listed["conflict_end"]) == busy_end
    table = school.run("meetings", "--conflicts").out
    assert str(meeting["id"]) in table and "conflict_start" in table

    digest = school.run("digest", "--dry-run").out
    assert f"meeting {meeting['id']} with {ADA}" in digest
    assert "meetings --conflicts" in digest
    assert PAT not in digest.split("confirmed meeting")[1]  # no family named for it
