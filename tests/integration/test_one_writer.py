"""Only the applier writes meetings, their history and their outbox rows (DESIGN §2-§3).

Two checks.  While a whole booking story runs (answers of every kind, a counter, a booking
address request, the outbox writing the teachers' events and making Zoom rooms, expiry,
the reminder, completion and feedback jobs), every INSERT, UPDATE or DELETE the database
receives for ``meetings``, ``meeting_guardians``, ``meeting_students`` and
``meeting_history`` is traced back to the Python frames that issued it:
``Applier.handle`` must be one of them (a path, not a file), and every column of
``meetings`` is seen written on it; every INSERT into ``outbox`` comes from
:mod:`ptm_sync.app.booking.apply`.  And no other module of the service builds such
a statement or calls the outbox's ``enqueue`` (read with :mod:`ast`).
"""

from __future__ import annotations

import ast
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from connectors.memory import MIRRORED_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.adapters.store import Database, Meeting, Teacher
from ptm_sync.app import jobs, outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer, VideoDeliverer
from ptm_sync.app.services import expire_holds
from ptm_sync.app.sync import Connectors
from tests.support.booking import ADA, ALAN, PAT, SAM, SeededSchool
from tests.support.booking_address import booking_request
from tests.support.fake_zoom import FakeZoom

ROOT = Path(__file__).resolve().parents[2]
APPLIER = str(ROOT / "ptm_sync" / "app" / "booking" / "apply.py")
GUARDED = re.compile(
    r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(meetings|meeting_guardians|"
    r"meeting_students|meeting_history)\b|^\s*INSERT\s+INTO\s+\"?outbox\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Write:
    """One guarded statement: its table and kind, the columns it sets, and whether it was
    issued on the path of ``Applier.handle`` (meetings and their history) or from the
    applier's module (outbox rows)."""

    table: str
    kind: str
    columns: frozenset[str]
    via_handle: bool
    by_applier: bool


def _columns(statement: str) -> frozenset[str]:
    """The columns an INSERT lists or an UPDATE sets (names as the SQL gives them)."""
    insert_columns = re.match(r"\s*INSERT\s+INTO\s+\S+\s*\(([^)]*)\)", statement, re.I)
    if insert_columns:
        return frozenset(c.strip().strip('"') for c in insert_columns.group(1).split(","))
    sets = re.search(r"\bSET\s+(.*?)\s+WHERE\b", statement, re.I | re.S)
    if sets:
        return frozenset(part.split("=")[0].strip().strip('"') for part in sets.group(1).split(","))
    return frozenset()


@pytest.fixture
def writes(db: Database) -> Iterator[list[Write]]:
    """Every guarded statement, traced back to the Python frames that issued it."""
    seen: list[Write] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = GUARDED.match(statement)
        if found:
            stack = traceback.extract_stack()
            seen.append(
                Write(
                    table=(found.group(2) or "outbox").lower(),
                    kind=found.group(0).split()[0].upper(),
                    columns=_columns(statement),
                    via_handle=any(f.filename == APPLIER and f.name == "handle" for f in stack),
                    by_applier=any(f.filename == APPLIER for f in stack),
                )
            )

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def _deliver_all(
    db: Database, school: SeededSchool, clock: list[datetime], server: MemoryCalendars
) -> None:
    """The outbox as the daemon runs it: the teachers' calendars (``server``, an in-memory
    calendar server), Zoom (its wire fake) and the emails."""
    with db.read() as session:
        for teacher in session.scalars(select(Teacher)):
            server.add_calendar(teacher.calendar)
    connectors = Connectors(school.config)
    connectors.provide("dav", MemoryConnector(server, connectors.horizon, MIRRORED_SYSTEM))
    deliverers = {
        outbox.EMAIL: lambda row: None,
        outbox.CALENDAR: CalendarDeliverer(db, school.config, connectors, lambda: clock[0]),
        outbox.VIDEO: VideoDeliverer(db, school.config, lambda: clock[0]),
    }
    report = outbox.flush(db, deliverers, clock=lambda: clock[0])
    assert report.dead == 0 and report.retried == 0, report


def test_every_write_of_a_meeting_comes_from_the_applier(
    db: Database, writes: list[Write], fake_zoom: FakeZoom
) -> None:
    school = SeededSchool.create(db, video=fake_zoom.video_keys())
    accepted = school.propose(ADA, PAT, slot=0)
    declined = school.propose(ALAN, PAT, slot=4, students=["S1"])
    countered = school.propose(ADA, SAM, slot=2)
    writes.clear()  # the set-up above went through the applier too; the story starts here

    assert school.deliver(school.reply(accepted, "ACCEPTED")).outcome == "applied"
    assert school.deliver(school.reply(declined, "DECLINED")).outcome == "applied"
    counter = school.counter(countered, slot=5)
    assert school.deliver(counter).reason == "counter accepted"
    assert school.deliver(booking_request(school, SAM, ALAN, slot=7)).outcome == "applied"
    clock = [school.now + timedelta(hours=1)]
    # The outbox writes the teachers' events and makes the Zoom rooms: what comes back (an
    # ETag, a joining link) is an event for the core, written by the applier.
    server = MemoryCalendars(tz=school.config.tz)
    _deliver_all(db, school, clock, server)
    linked = school.meeting(accepted.id)
    assert linked.video_url.startswith("https://us02web.zoom.us/j/") and not linked.link_pending
    # The teacher writes a note in the event; the parent then moves the meeting: our write
    # is refused (412), the calendar read again, the edit made the version we know (DESIGN
    # §3), and the move written on it, keeping the teacher's text.
    with db.read() as session:
        teacher = session.get(Teacher, linked.teacher_id)
        assert teacher is not None
        ada = teacher.calendar
    assert linked.remote_href is not None
    server.teacher_edits(ada, linked.remote_href, "Ada: see Pat")
    assert school.deliver(school.counter(linked, slot=6)).reason == "counter accepted"
    _deliver_all(db, school, clock, server)
    moved = school.meeting(accepted.id)
    assert moved.remote_edited and (moved.remote_start, moved.start) == (
        school.slot(6).start,
        school.slot(6).start,
    )
    stored = server.calendars[ada].objects[linked.remote_href]
    assert (stored.event.summary, stored.event.start) == ("Ada: see Pat", school.slot(6).start)
    later = school.now + timedelta(hours=49)
    assert expire_holds(school.db, school.config, now=later, video=school.video) >= 1
    # The jobs around the meeting: the reminder, completion and the feedback request are
    # the core's events, written by the applier (reminded_start, state, feedback_token).
    evening = school.slot(6)
    for name, at in (
        ("remind", evening.start - timedelta(hours=1)),
        ("complete", evening.end),
        ("feedback", evening.end + timedelta(minutes=15)),
    ):
        ran = jobs.run(db, school.config, jobs.find(name), now=at, video=school.video)
        assert ran.done is not None and ran.done.queued != (name == "complete"), ran
    done = school.meeting(accepted.id)
    assert done.state == "completed" and done.reminded_start == evening.start
    assert done.feedback_token is not None

    assert writes, "the story wrote nothing: the check would pass vacuously"
    meetings = [w for w in writes if w.table != "outbox"]
    assert [(w.table, w.kind) for w in meetings if not w.via_handle] == []
    assert [w.kind for w in writes if w.table == "outbox" and not w.by_applier] == []
    # Every column of ``meetings`` was written in the story, each time on that path: the
    # updates alone set every column a meeting's life changes, the video link included.
    every = {c.name for c in Meeting.__table__.columns} - {"id"}
    inserted = set().union(
        *(w.columns for w in meetings if w.table == "meetings" and w.kind == "INSERT")
    )
    updated = set().union(
        *(w.columns for w in meetings if w.table == "meetings" and w.kind == "UPDATE")
    )
    assert every <= inserted
    changing = {
        "state",
        "sequence",
        "start",
        "end",
        "partstat",
        "video_url",
        "hold_until",
        "reply_sequence",
        "reply_dtstamp",
        "remote_href",
        "remote_etag",
        "remote_start",
        "remote_end",
        "remote_edited",
        "link_pending",
        "reminded_start",
        "feedback_token",
        "updated_at",
    }
    assert changing <= updated, changing - updated


#: Statements and calls that write meetings, their history or outbox rows.
_WRITERS = re.compile(
    r"\b(insert|update|delete)\((Meeting|MeetingGuardian|MeetingStudent|MeetingHistory)\b"
    r"|\bMeeting(Guardian|Student|History)?\("
    r"|\boutbox\.enqueue\("
    r"|\benqueue_email\("
)


#: Writers of outbox rows that are no meeting's effect: the staff digest is an email about
#: the service itself (quarantine, dead letters), ``nudge`` an email to a household that has
#: not booked; neither has a meeting_id.  Their meeting-writing statements would still be
#: caught (the scan below checks them all the same).
NOT_A_MEETINGS_EFFECT = {
    "ptm_sync/app/read/digest.py": r"\boutbox\.enqueue\(",
    "ptm_sync/app/channels/nudge.py": r"\boutbox\.enqueue\(",
}


def test_no_other_module_writes_meetings_or_outbox_rows() -> None:
    offenders = []
    for path in sorted((ROOT / "ptm_sync").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "ptm_sync/app/booking/apply.py" or "/migrations/" in relative:
            continue
        allowed = NOT_A_MEETINGS_EFFECT.get(relative)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                text = ast.unparse(node)
                if _WRITERS.match(text) and not (allowed and re.match(allowed, text)):
                    offenders.append(f"{relative}:{node.lineno} {text[:60]}")
                if allowed and re.match(allowed, text):
                    assert "meeting_id" not in text, (
                        f"{relative}:{node.lineno} writes a meeting's row"
                    )
            elif isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    text = ast.unparse(target)
                    if re.search(
                        r"\b(meeting|live)\.(state|sequence|start|end|partstat|hold_until)\b", text
                    ):
                        offenders.append(f"{relative}:{node.lineno} {text}")
    assert offenders == []


def test_the_scan_finds_a_writer_where_there_is_one() -> None:
    """The scan above can fail: it sees the applier's own writes."""
    source = (ROOT / "ptm_sync" / "app" / "booking" / "apply.py").read_text(encoding="utf-8")
    calls = [ast.unparse(n) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    assert any(_WRITERS.match(c) for c in calls)
