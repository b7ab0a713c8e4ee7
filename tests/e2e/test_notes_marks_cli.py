"""Staff keeping the record at the command line (DESIGN §3, §7; issue 16 items 4, 6, 7):
`meetings mark ID --no-show|--attended [--reason TEXT]`, `meetings note ID TEXT`, and the
`meetings` filters, on Radicale and aiosmtpd.

A note is staff-only: after a note with a unique marker, the booking's confirmation, a
reschedule, a cancellation, the reminder and the feedback request go out, and the marker is
in no outbox row, no email the families received, no event of the teacher's calendar and no
public page; `meetings show` is where it is read.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, time
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Feedback, Guardian, Teacher
from ptm_sync.config import settings as config_mod
from ptm_sync.interfaces.web.pages import Site
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import TEACHERS, TZ, Run, School, parse, teacher_events

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, GRACE = "ada@lincoln.example.org", "grace@lincoln.example.org"
PAT, SAM = "pat@example.net", "sam@example.com"


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> Iterator[tuple[School, SmtpSink]]:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    yield s, sink


def when(s: School, clock: str) -> datetime:
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def run_at(s: School, moment: datetime, *args: str) -> Run:
    """``ptm-sync ARGS`` with the commands' clock at ``moment``."""
    done = ptm_sync(s.config, *args, env=at(moment))
    return Run(done.returncode, done.stdout, done.stderr)


def book(s: School, guardian: str, teacher: str, clock: str) -> int:
    done = s.run(
        "book", "--guardian", guardian, "--teacher", teacher, "--start", f"{s.day}T{clock}"
    )
    return int(done.out.split("meeting ", 1)[1].split()[0])


def state(s: School, meeting_id: int) -> str:
    return str(next(m for m in s.meetings() if m["id"] == meeting_id)["state"])


def email_text(raw: bytes) -> str:
    """Every part of an email, decoded (base64 and quoted-printable bodies included)."""
    texts = [raw.decode("utf-8", "replace")]
    for part in parse(raw).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts)


def outbox_texts(db_file: Path) -> list[str]:
    """Every outbox row's payload, with the emails in it decoded."""
    with sqlite3.connect(db_file) as conn:
        payloads = [row[0] for row in conn.execute("SELECT payload FROM outbox")]
    texts = []
    for payload in payloads:
        texts.append(payload)
        data = json.loads(payload)
        if isinstance(data, dict) and isinstance(data.get("raw"), str):
            texts.append(email_text(base64.b64decode(data["raw"])))
    return texts


def public_pages(s: School) -> list[str]:
    """The public site's pages (DESIGN §7 HTTP): index, the period, its JSON, the feeds."""
    config = config_mod.load(str(s.config))
    db = Database(config.database.url)
    try:
        site = Site(config, db, lambda: datetime.now(TZ))
        paths = ["/", "/periods/spring", "/periods/spring/slots.json"]
        with db.read() as session:
            keys = list(session.scalars(select(Teacher.key)))
        paths += [f"/periods/spring/teachers/{key}.ics" for key in keys]
        answers = [site.handle(path) for path in paths]
    finally:
        db.dispose()
    assert all(a.status == 200 for a in answers), [a.status for a in answers]
    return [a.body.decode("utf-8", "replace") for a in answers]


# --- notes ----------------------------------------------------------------------------------


def test_a_note_is_shown_by_meetings_show_and_reaches_no_family_calendar_or_page(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    marker = f"NOTE-{uuid.uuid4().hex}"
    meeting_id = book(s, PAT, GRACE, "15:30")  # a confirmation to Pat, the teacher's event

    kept = s.run("meetings", "note", str(meeting_id), marker, "father", "asks", "about", "maths")
    assert kept.out.startswith("note 1 kept on meeting") and marker not in kept.out
    # A cancelled one keeps its notes too: the note is on the record, whatever the state.
    other = book(s, SAM, ADA, "16:00")
    s.run("meetings", "note", str(other), f"{marker} second")
    # What families and calendars get after the note: a reschedule (REQUEST update, the
    # teacher's event moved) and a cancellation (CANCEL, the event removed).
    s.run("reschedule", str(meeting_id), "--start", f"{s.day}T16:15")
    s.run("cancel", str(other), "--reason", "the teacher is ill")
    # ... the reminder before it, and after it the feedback request.
    sent = len(sink.received)
    assert "1 reminder queued" in run_at(s, when(s, "12:00"), "jobs", "run", "remind").out
    run_at(s, when(s, "16:40"), "jobs", "run", "complete")
    assert "1 feedback request queued" in run_at(s, when(s, "16:45"), "jobs", "run", "feedback").out
    s.run("outbox", "flush")
    assert len(sink.received) == sent + 2  # the reminder and the feedback request

    shown = s.run("meetings", "show", str(meeting_id)).out
    notes = shown.split("\nNotes:\n", 1)[1]
    assert f": {marker} father asks about maths" in notes
    assert "Feedback:" not in shown  # none recorded
    assert f"{marker} second" in s.run("meetings", "show", str(other)).out
    assert len(sink.received) == 6  # 2 confirmations, an update, a cancellation, 2 above
    assert all(marker not in email_text(m.raw) for m in sink.received)
    assert all(marker not in text for text in outbox_texts(s.folder / "ptm.db"))
    events = teacher_events(radicale_server, s.calendars[GRACE])
    assert events and all(marker not in e.to_ical().decode() for e in events)
    assert all(marker not in page for page in public_pages(s))
    # The list of meetings is no place for notes either.
    assert marker not in s.run("meetings", "--format", "json").out


def test_a_note_needs_text_and_a_meeting(school: tuple[School, SmtpSink]) -> None:
    s, _ = school
    meeting_id = book(s, PAT, GRACE, "15:30")

    empty = s.run("meetings", "note", str(meeting_id), "  ", check=False)
    assert empty.code == 2 and "the note is empty" in empty.err
    missing = s.run("meetings", "note", "999", "hello", check=False)
    assert (missing.code, missing.err.strip()) == (1, "ptm-sync: no meeting 999")
    assert "Notes:" not in s.run("meetings", "show", str(meeting_id)).out


def test_meetings_show_lists_the_feedback_a_family_gave(school: tuple[School, SmtpSink]) -> None:
    s, _ = school
    meeting_id = book(s, PAT, GRACE, "15:30")
    db = Database(f"sqlite:///{s.folder / 'ptm.db'}")
    try:
        with db.write() as session:
            pat = session.scalars(select(Guardian).where(Guardian.email == PAT)).one()
            session.add(
                Feedback(
                    meeting_id=meeting_id,
                    guardian_id=pat.id,
                    at=when(s, "17:00"),
                    text="Very helpful.\nThank you!",
                )
            )
    finally:
        db.dispose()

    shown = s.run("meetings", "show", str(meeting_id)).out
    feedback = shown.split("\nFeedback:\n", 1)[1].splitlines()
    assert feedback == [f"  {s.day} 17:00 Pat Johnson <{PAT}>: Very helpful.", "    Thank you!"]


# --- marks ----------------------------------------------------------------------------------


def test_marks_and_their_corrections_need_the_meeting_started_and_a_reason(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    meeting_id = book(s, PAT, GRACE, "15:30")
    before, sent = teacher_events(radicale_server, s.calendars[GRACE]), len(sink.received)
    started, ended = when(s, "15:35"), when(s, "15:50")

    early = s.run("meetings", "mark", str(meeting_id), "--attended", check=False)
    assert (early.code, early.err.strip()) == (
        1,
        "ptm-sync: not marked: the meeting has not started yet",
    )
    assert state(s, meeting_id) == "confirmed"

    came = run_at(s, started, "meetings", "mark", str(meeting_id), "--attended")
    assert came.code == 0 and came.out.strip() == f"marked: meeting {meeting_id} is completed"
    again = run_at(s, ended, "meetings", "mark", str(meeting_id), "--attended")
    assert again.out.strip() == f"meeting {meeting_id} is completed already: nothing changed"

    # completed -> no_show is a correction: refused without a reason, naming --reason.
    bare = run_at(s, ended, "meetings", "mark", str(meeting_id), "--no-show")
    assert bare.code == 1 and "--reason" in bare.err and len(bare.err.strip().splitlines()) == 1
    assert "needs a reason" in bare.err and state(s, meeting_id) == "completed"
    fixed = run_at(
        s, ended, "meetings", "mark", str(meeting_id), "--no-show", "--reason", "marked wrongly"
    )
    assert fixed.out.strip() == f"marked: meeting {meeting_id} is no_show"
    # ... and back, again only with a reason.
    back = run_at(s, ended, "meetings", "mark", str(meeting_id), "--attended")
    assert back.code == 1 and "--reason" in back.err and state(s, meeting_id) == "no_show"
    run_at(s, ended, "meetings", "mark", str(meeting_id), "--attended", "--reason", "came late")
    assert state(s, meeting_id) == "completed"

    history = s.run("meetings", "show", str(meeting_id)).out
    changes = [
        line
        for line in history.splitlines()
        if "confirmed -> completed" in line
        or "completed -> no_show" in line
        or "no_show -> completed" in line
    ]
    assert len(changes) == 3 and all(" staff " in f" {line} " for line in changes)
    assert "marked no-show" in history and "marked wrongly" in history
    assert "came late" in history
    # Marks tell nobody and leave the teacher's calendar as it was.
    assert len(sink.received) == sent
    after = teacher_events(radicale_server, s.calendars[GRACE])
    assert [e.to_ical() for e in after] == [e.to_ical() for e in before]


def test_a_no_show_straight_from_confirmed_and_marks_that_cannot_apply(
    school: tuple[School, SmtpSink],
) -> None:
    s, _ = school
    meeting_id = book(s, SAM, ADA, "16:00")
    late = when(s, "16:20")

    missed = run_at(s, late, "meetings", "mark", str(meeting_id), "--no-show")
    assert missed.out.strip() == f"marked: meeting {meeting_id} is no_show"
    # A cancelled meeting cannot be marked.
    other = book(s, PAT, GRACE, "15:00")
    s.run("cancel", str(other))
    refused = run_at(s, late, "meetings", "mark", str(other), "--no-show")
    assert (refused.code, refused.err.strip()) == (
        1,
        "ptm-sync: not marked: the meeting is cancelled",
    )
    both = s.run("meetings", "mark", str(meeting_id), "--no-show", "--attended", check=False)
    assert both.code == 2 and "not allowed with argument" in both.err
    neither = s.run("meetings", "mark", str(meeting_id), check=False)
    assert neither.code == 2 and "one of the arguments --no-show --attended" in neither.err
    unknown = s.run("meetings", "mark", "999", "--no-show", check=False)
    assert (unknown.code, unknown.err.strip()) == (1, "ptm-sync: no meeting 999")


# --- the filters of `meetings` ----------------------------------------------------------------


def test_meetings_filters_are_validated(school: tuple[School, SmtpSink]) -> None:
    s, _ = school
    book(s, PAT, GRACE, "15:30")

    bogus = s.run("meetings", "--state", "bogus", check=False)
    assert bogus.code == 2 and bogus.out == ""
    assert "invalid choice: 'bogus'" in bogus.err
    for valid in ("proposed", "confirmed", "completed", "no_show", "cancelled"):
        assert f"'{valid}'" in bogus.err
    stranger = s.run("meetings", "--teacher", "nobody@lincoln.example.org", check=False)
    assert (stranger.code, stranger.err.strip()) == (
        1,
        "ptm-sync: no teacher 'nobody@lincoln.example.org' in the roster",
    )
    assert [m["teacher"] for m in s.meetings(teacher=GRACE.upper())] == [GRACE]
    assert s.meetings(teacher=TEACHERS[0][0]) == []
    assert [m["state"] for m in s.meetings(state="confirmed")] == ["confirmed"]
    assert s.meetings(state="proposed") == []
