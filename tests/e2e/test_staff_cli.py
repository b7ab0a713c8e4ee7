"""Staff at the command line (DESIGN §7): `book`, `reschedule`, `cancel`, `waitlist`,
`meetings show`, `quarantine show` and `quarantine release`, on real servers.

Radicale holds the teachers' calendars and aiosmtpd receives what we send; every command
runs as a subprocess with ``--config``, as the school office would type it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Event

from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar, put_ics
from tests.support.calendar_data import ics, vevent
from tests.support.cli import ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    FAMILIES,
    ORGANIZER,
    TZ,
    School,
    calendar_part,
    now_utc,
    parse,
    plain_body,
    teacher_events,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (
    "ada@lincoln.example.org",
    "alan@lincoln.example.org",
    "grace@lincoln.example.org",
)
PAT, SAM, MARIA = "pat@example.net", "sam@example.com", "maria@example.org"
CHRIS, ALEX = "chris.brown@example.org", "alex.brown@example.org"
KIM = "kim@example.org"
#: Zoe Brown has two guardians and sees Ada (teacher 0).
BROWNS = [
    ("S5", "Zoe Brown", CHRIS, "Chris Brown", [0]),
    ("S5", "Zoe Brown", ALEX, "Alex Brown", [0]),
]


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> Iterator[tuple[School, SmtpSink]]:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    yield s, sink


def at(s: School, clock: str) -> datetime:
    """``clock`` on the school's evening, in the school's zone."""
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def local(s: School, clock: str) -> str:
    """What a person types: the evening's date and a time, no offset."""
    return f"{s.day}T{clock}"


def stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def meeting(s: School, meeting_id: int) -> dict[str, Any]:
    return next(m for m in s.meetings() if m["id"] == meeting_id)


def booked_id(out: str) -> int:
    """The meeting id in "booked: meeting 7 …" (or moved:, cancelled:)."""
    return int(out.split("meeting ", 1)[1].split()[0])


def sent(sink: SmtpSink, since: int = 0) -> list[tuple[str, str | None, Event | None]]:
    """(recipient, iTIP method, event) of each email received after the first ``since``."""
    found = []
    for mail in sink.received[since:]:
        has_calendar = any(p.get_content_type() == "text/calendar" for p in parse(mail.raw).walk())
        cal = calendar_part(mail.raw) if has_calendar else None
        method = str(cal["METHOD"]) if cal is not None else None
        found.append((to_address(mail.raw), method, cal.events[0] if cal is not None else None))
    return found


def busy_after_first_slot(s: School, server: EmbeddedCalDAV, teacher: str) -> None:
    """The teacher is busy from 15:15 to the end of the evening: one slot stays free."""
    url = make_calendar(server)
    put_ics(
        server,
        url,
        ics(
            vevent(
                "staff-meeting",
                f"DTSTART:{stamp(at(s, '15:15'))}",
                f"DTEND:{stamp(at(s, '17:00'))}",
                "SUMMARY:Department meeting",
            )
        ),
    )
    s.calendars[teacher] = url


# --- book -----------------------------------------------------------------------------------


def test_staff_book_confirms_writes_the_calendar_and_refuses_with_free_times(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    done = s.run("book", "--guardian", PAT, "--teacher", GRACE, "--start", local(s, "15:30"))

    assert "booked: meeting" in done.out and done.out.splitlines()[0].endswith(": confirmed")
    assert "delivered 2; 0 will be retried; 0 failed" in done.out  # an email, an event
    booked = meeting(s, booked_id(done.out))
    assert (booked["state"], booked["students"], booked["guardian"]) == ("confirmed", ["S2"], PAT)
    assert datetime.fromisoformat(booked["start"]) == at(s, "15:30")
    [(to, method, event)] = sent(sink)
    assert (to, method) == (PAT, "REQUEST") and event is not None
    assert (str(event["UID"]), str(event["STATUS"])) == (booked["uid"], "CONFIRMED")
    events = teacher_events(radicale_server, s.calendars[GRACE])
    assert [e.start for e in events if str(e["UID"]) == booked["uid"]] == [at(s, "15:30")]

    # The same time for another family: refused, with the three nearest free times.
    busy = s.run(
        "book", "--guardian", MARIA, "--teacher", GRACE, "--start", local(s, "15:30"), check=False
    )
    assert busy.code == 1 and "Traceback" not in busy.err
    assert busy.err.strip().splitlines() == [
        "ptm-sync: not booked: the teacher is not free then; free times nearby: "
        f"{s.day} 15:00, {s.day} 15:15, {s.day} 15:45"
    ]
    off_grid = s.run(
        "book", "--guardian", MARIA, "--teacher", GRACE, "--start", local(s, "15:37"), check=False
    )
    assert off_grid.code == 1 and "start at the listed times" in off_grid.err
    assert len(s.meetings()) == 1 and len(sink.received) == 1

    shown = s.run("meetings", "show", str(booked["id"])).out
    assert f"meeting {booked['id']} (spring): {GRACE} with {PAT} about S2" in shown
    [entry] = [line for line in shown.splitlines() if "booked by staff" in line]
    assert "staff" in entry.split() and "new -> confirmed" in entry


def test_past_the_deadline_only_an_override_books_and_the_history_records_it(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    s = School(
        tmp_path, radicale_server, sink.port, extra_config="booking_closes = 2020-01-06T17:00:00"
    )
    s.setup()
    args = ["book", "--guardian", SAM, "--teacher", ADA, "--start", local(s, "16:00")]

    refused = s.run(*args, check=False)
    assert refused.code == 1
    assert refused.err.strip() == "ptm-sync: not booked: booking has closed"
    assert s.meetings() == []

    done = s.run(*args, "--override", "--note", "paper form")
    assert "staff override recorded: deadline" in done.out
    meeting_id = booked_id(done.out)
    assert meeting(s, meeting_id)["state"] == "confirmed"
    shown = s.run("meetings", "show", str(meeting_id)).out
    assert "booked by staff: paper form (staff override: deadline)" in shown


# --- reschedule -----------------------------------------------------------------------------


def test_reschedule_moves_the_meeting_in_the_teachers_calendar_and_tells_the_parent(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    meeting_id = booked_id(
        s.run("book", "--guardian", SAM, "--teacher", ADA, "--start", local(s, "15:00")).out
    )
    before = len(sink.received)
    new_time = at(s, "16:15")

    moved = s.run("reschedule", str(meeting_id), "--start", new_time.isoformat())

    assert moved.out.startswith(f"moved: meeting {meeting_id} {s.day} 16:15-16:30")
    after = meeting(s, meeting_id)
    assert (after["state"], after["sequence"]) == ("confirmed", 1)
    assert datetime.fromisoformat(after["start"]) == new_time
    [(to, method, event)] = sent(sink, before)
    assert (to, method) == (SAM, "REQUEST") and event is not None
    assert (int(event["SEQUENCE"]), event.start) == (1, new_time)
    events = [
        e
        for e in teacher_events(radicale_server, s.calendars[ADA])
        if str(e["UID"]) == after["uid"]
    ]
    assert [e.start for e in events] == [new_time]
    shown = s.run("meetings", "show", str(meeting_id)).out
    assert f"{s.day} 15:00 -> 16:15" in shown and "rescheduled by staff" in shown

    taken = s.run("book", "--guardian", PAT, "--teacher", ADA, "--start", local(s, "15:30")).out
    clash = s.run("reschedule", str(meeting_id), "--start", local(s, "15:30"), check=False)
    assert clash.code == 1 and "the teacher is not free then" in clash.err
    assert meeting(s, meeting_id)["sequence"] == 1 and "booked:" in taken


# --- cancel and the waiting list ------------------------------------------------------------


def test_cancel_tells_every_guardian_and_the_first_family_waiting_gets_the_time(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    # Three families need Ada (and nobody else), and she has one free slot.
    families = [
        ("S3", "Ava Smith", SAM, "Sam Smith", [0]),
        ("S4", "Noah Garcia", MARIA, "Maria Garcia", [1, 2]),
        *BROWNS,
        ("S6", "Ivy Park", KIM, "Kim Park", [0]),
    ]
    s = School(tmp_path, radicale_server, sink.port, families=families)
    busy_after_first_slot(s, radicale_server, ADA)
    s.setup()
    s.run("invite")
    # One is proposed the slot; two wait, in the order they came.
    [ada] = s.meetings(teacher=ADA)
    waiting = s.run("waitlist", "--format", "json").json()
    assert [set(w) for w in waiting] == [
        {"teacher", "guardian", "students", "position", "since"}
    ] * 2
    assert [(w["teacher"], w["position"]) for w in waiting] == [(ADA, 1), (ADA, 2)]
    assert sorted([ada["students"]] + [w["students"] for w in waiting]) == [["S3"], ["S5"], ["S6"]]
    for w in waiting:
        since = datetime.fromisoformat(w["since"])
        assert since.utcoffset() == since.astimezone(TZ).utcoffset()
        assert abs(since - now_utc()) < timedelta(minutes=10)
    assert waiting[0]["since"] <= waiting[1]["since"]
    # Options may follow the command (DESIGN §7).
    after = ptm_sync(None, "waitlist", "--format", "json", "--config", s.config, cwd=s.folder)
    assert after.returncode == 0 and json.loads(after.stdout) == waiting
    before = len(sink.received)

    cancelled = s.run("cancel", str(ada["id"]), "--reason", "Ms Lovelace is ill")

    assert cancelled.out.startswith(f"cancelled: meeting {ada['id']}")
    assert meeting(s, ada["id"])["state"] == "cancelled"
    mails = sent(sink, before)
    cancels = sorted(to for to, method, _ in mails if method == "CANCEL")
    assert cancels == sorted(ada["guardians"])
    first = waiting[0]
    [offered] = [m for m in s.meetings(teacher=ADA) if m["state"] == "proposed"]
    assert (offered["guardian"], offered["start"]) == (first["guardian"], ada["start"])
    assert offered["students"] == first["students"]
    invited = {
        to for to, method, e in mails if method == "REQUEST" and str(e["UID"]) == offered["uid"]
    }
    assert first["guardian"] in invited
    left = s.run("waitlist", "--format", "json").json()
    assert [(w["guardian"], w["position"]) for w in left] == [(waiting[1]["guardian"], 1)]


def test_cancel_a_teachers_day_cancels_every_meeting_and_frees_the_times(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port, families=[*FAMILIES, *BROWNS])
    s.setup()
    s.run("invite")
    adas = s.meetings(teacher=ADA)
    assert len(adas) == 3
    # One of them is confirmed, so its event is in Ada's calendar.
    invitation = next(
        m.raw
        for m in sink.received
        if any(p.get_content_type() == "text/calendar" for p in parse(m.raw).walk())
        and str(calendar_part(m.raw).events[0]["UID"]) == adas[0]["uid"]
    )
    reply = parents.reply("outlook", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    s.run("outbox", "flush")
    assert [str(e["UID"]) for e in teacher_events(radicale_server, s.calendars[ADA])] == [
        adas[0]["uid"]
    ]
    others = {m["id"]: m["state"] for m in s.meetings() if m["teacher"] != ADA}
    before = len(sink.received)

    done = s.run("cancel", "--teacher", ADA, "--date", str(s.day), "--reason", "Ms Lovelace is ill")

    assert f"cancelled 3 meetings of {ADA} on {s.day}" in done.out
    assert {m["state"] for m in s.meetings(teacher=ADA)} == {"cancelled"}
    assert {m["id"]: m["state"] for m in s.meetings() if m["teacher"] != ADA} == others
    cancels = sorted(to for to, method, _ in sent(sink, before) if method == "CANCEL")
    assert cancels == sorted(g for m in adas for g in m["guardians"])
    assert CHRIS in cancels and ALEX in cancels
    bodies = [plain_body(m.raw) for m in sink.received[before:]]
    assert all("Ms Lovelace is ill" in b for b in bodies)
    assert teacher_events(radicale_server, s.calendars[ADA]) == []
    free = {x["start"] for x in s.run("slots", "--teacher", ADA, "--format", "json").json()}
    assert {m["start"] for m in adas} <= free

    assert s.run("cancel", "--teacher", ADA, check=False).code == 2
    assert s.run("cancel", "7", "--teacher", ADA, "--date", str(s.day), check=False).code == 2
    bad_date = s.run("cancel", "--teacher", ADA, "--date", "2027-13-01", check=False)
    assert bad_date.code == 2 and "--date: not a date: '2027-13-01'" in bad_date.err
    bad_time = s.run("reschedule", "7", "--start", "nonsense", check=False)
    assert bad_time.code == 2 and "--start: not an ISO 8601 time: 'nonsense'" in bad_time.err


# --- quarantine -----------------------------------------------------------------------------

ALIAS = "pat.work@example.com"


def test_a_quarantined_reply_is_shown_and_released_once_the_alias_is_configured(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    s.run("invite")
    [leo] = [m for m in s.meetings() if m["students"] == ["S2"]]
    invitation = next(
        m.raw
        for m in sink.received
        if any(p.get_content_type() == "text/calendar" for p in parse(m.raw).walk())
        and str(calendar_part(m.raw).events[0]["UID"]) == leo["uid"]
    )
    accept = parents.reply("thunderbird", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    from_work = accept.replace(f"<{PAT}>".encode(), f"<{ALIAS}>".encode())
    held = s.run("mail", "deliver", stdin=from_work).out.strip()
    assert held == "quarantined (sender-not-attendee)"
    [entry] = s.run("quarantine", "--format", "json").json()
    qid = str(entry["id"])

    shown = s.run("quarantine", "show", qid).out
    assert f"inbound message {qid}: quarantined (sender-not-attendee)" in shown
    assert f"sender:     {ALIAS}" in shown and f"message-id: {entry['message_id']}" in shown
    calendar = shown.split("calendar part:\n", 1)[1]
    assert calendar.startswith("BEGIN:VCALENDAR") and "METHOD:REPLY" in calendar
    assert leo["uid"] in calendar and "PARTSTAT=ACCEPTED" in calendar

    plain = (
        f"From: {PAT}\r\nTo: {ORGANIZER}\r\nSubject: Thursday?\r\n"
        "Message-ID: <plain-1@example.net>\r\n\r\nCan we meet on Thursday?\r\n"
    ).encode()
    s.run("mail", "deliver", stdin=plain)
    plain_id = max(q["id"] for q in s.run("quarantine", "--format", "json").json())
    assert "no calendar part: the message has no calendar part" in (
        s.run("quarantine", "show", str(plain_id)).out
    )

    # Released before the cause is fixed: it stays, and says so.
    early = s.run("quarantine", "release", qid, check=False)
    assert early.code == 1 and "still in quarantine: sender-not-attendee" in early.err
    assert meeting(s, leo["id"])["state"] == "proposed"

    text = s.config.read_text()
    s.config.write_text(
        text.replace(
            f'organizer = "{ORGANIZER}"',
            f'organizer = "{ORGANIZER}"\naliases = {{ "{PAT}" = ["{ALIAS}"] }}',
        )
    )
    before = len(sink.received)
    released = s.run("quarantine", "release", qid)

    assert released.out.splitlines()[0] == "applied (accepted)"
    confirmed = meeting(s, leo["id"])
    assert (confirmed["state"], confirmed["sequence"]) == ("confirmed", 1)
    [(to, method, event)] = sent(sink, before)
    assert (to, method, str(event["STATUS"]) if event else "") == (PAT, "REQUEST", "CONFIRMED")
    assert [q["id"] for q in s.run("quarantine", "--format", "json").json()] == [plain_id]
    history = s.run("meetings", "show", str(leo["id"])).out
    [accepted] = [line for line in history.splitlines() if "proposed -> confirmed" in line]
    assert f"#{qid} {entry['message_id']}" in accepted

    again = s.run("quarantine", "release", qid, check=False)
    assert again.code == 1
    assert (
        again.err.strip()
        == f"ptm-sync: inbound message {qid} is not in quarantine (applied: accepted)"
    )
    missing = s.run("quarantine", "show", "999", check=False)
    assert (missing.code, missing.err.strip()) == (1, "ptm-sync: no inbound message 999")
