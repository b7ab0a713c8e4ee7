"""Only the applier writes meetings, their history and their outbox rows (DESIGN §2-§3).

Two checks.  While a whole booking story runs (invite, answers of every kind, a counter, a
booking address request, expiry, staff cancel), every INSERT, UPDATE or DELETE the database
receives for ``meetings``, ``meeting_guardians``, ``meeting_students``, ``meeting_history``
and every INSERT into ``outbox`` is traced back to the Python frames that issued it: one of
them must be :mod:`ptm_sync.app.booking.apply`.  And no other module of the service builds such
a statement or calls the outbox's ``enqueue`` (read with :mod:`ast`).
"""

from __future__ import annotations

import ast
import re
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ptm_sync.adapters.store import Database
from ptm_sync.app.services import expire_holds
from tests.support.booking import ADA, ALAN, PAT, SAM, SeededSchool
from tests.support.booking_address import booking_request

ROOT = Path(__file__).resolve().parents[2]
APPLIER = str(ROOT / "ptm_sync" / "app" / "booking" / "apply.py")
GUARDED = re.compile(
    r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(meetings|meeting_guardians|"
    r"meeting_students|meeting_history)\b|^\s*INSERT\s+INTO\s+\"?outbox\b",
    re.IGNORECASE,
)


@pytest.fixture
def writes(db: Database) -> Iterator[list[tuple[str, bool]]]:
    """Every guarded statement, with whether the applier issued it."""
    seen: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if GUARDED.match(statement):
            files = {frame.filename for frame in traceback.extract_stack()}
            seen.append((statement.split("(")[0].strip(), APPLIER in files))

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def test_every_write_of_a_meeting_comes_from_the_applier(
    db: Database, writes: list[tuple[str, bool]]
) -> None:
    school = SeededSchool.create(db)
    accepted = school.propose(ADA, PAT, slot=0)
    declined = school.propose(ALAN, PAT, slot=4, students=["S1"])
    countered = school.propose(ADA, SAM, slot=2)
    writes.clear()  # the set-up above went through the applier too; the story starts here

    assert school.deliver(school.reply(accepted, "ACCEPTED")).outcome == "applied"
    assert school.deliver(school.reply(declined, "DECLINED")).outcome == "applied"
    counter = school.counter(countered, slot=5)
    assert school.deliver(counter).reason == "counter accepted"
    assert school.deliver(booking_request(school, SAM, ALAN, slot=7)).outcome == "applied"
    later = school.now + timedelta(hours=49)
    assert expire_holds(school.db, school.config, now=later, video=school.video) >= 1

    assert writes, "the story wrote nothing: the check would pass vacuously"
    assert [w for w, by_applier in writes if not by_applier] == []


#: Statements and calls that write meetings, their history or outbox rows.
_WRITERS = re.compile(
    r"\b(insert|update|delete)\((Meeting|MeetingGuardian|MeetingStudent|MeetingHistory)\b"
    r"|\bMeeting(Guardian|Student|History)?\("
    r"|\boutbox\.enqueue\("
    r"|\benqueue_email\("
)


#: Writers of outbox rows that are no meeting's effect: the staff digest is an email about
#: the service itself (quarantine, dead letters) with no meeting_id.  Its meeting-writing
#: statements would still be caught (the scan below checks them all the same).
NOT_A_MEETINGS_EFFECT = {"ptm_sync/app/read/digest.py": r"\boutbox\.enqueue\("}


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
