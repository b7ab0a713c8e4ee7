"""Shared factories for the rows and messages many tests start from.

In the store (a session open for writing; each factory adds its row and flushes, so its
``id`` is there):

    with db.write() as s:
        teacher, guardian = make_people(s)               # period "p", a teacher, a guardian
        meeting = make_meeting(s, teacher=teacher, guardian=guardian, start=T0, now=T0)

Through the command line (:class:`tests.support.school.School` and the SMTP sink that
receives what it sends):

    meeting, raw = make_invitation(school, sink, teacher=ADA)   # `invite`, then the REQUEST

Keyword arguments name what a test cares about; everything else gets a plain value that
no assertion depends on.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Guardian, Meeting, Period, Teacher
from tests.support.school import calendar_part, parse, to_address

if TYPE_CHECKING:
    from tests.support.mailservers import SmtpSink
    from tests.support.school import School

_UIDS = itertools.count(1)


def make_period(session: Session, period_id: str = "p", *, title: str = "P") -> Period:
    """A booking period row (meetings name one)."""
    period = Period(id=period_id, title=title)
    session.add(period)
    session.flush()
    return period


def make_teacher(
    session: Session,
    key: str = "t",
    *,
    email: str | None = None,
    name: str | None = None,
    account: str = "a",
    calendar: str | None = None,
    room: str = "",
    booking_address: str = "",
) -> Teacher:
    """A teacher row: ``email`` defaults to ``KEY@s``, ``name`` to ``KEY`` upper-cased,
    ``calendar`` to ``KEY``."""
    teacher = Teacher(
        email=email or f"{key}@s",
        name=name or key.upper(),
        key=key,
        account=account,
        calendar=calendar or key,
        room=room,
        booking_address=booking_address,
    )
    session.add(teacher)
    session.flush()
    return teacher


def make_guardian(
    session: Session, email: str = "g@h", *, name: str = "G", language: str = ""
) -> Guardian:
    """A guardian row."""
    guardian = Guardian(email=email, name=name, language=language)
    session.add(guardian)
    session.flush()
    return guardian


def make_people(session: Session, period_id: str = "p") -> tuple[Teacher, Guardian]:
    """The fewest rows a meeting needs: the period ``period_id``, a teacher and a guardian."""
    make_period(session, period_id)
    return make_teacher(session), make_guardian(session)


def make_meeting(
    session: Session,
    *,
    teacher: Teacher | int,
    guardian: Guardian | int,
    start: datetime,
    minutes: int = 15,
    state: str = "proposed",
    uid: str | None = None,
    period_id: str = "p",
    now: datetime | None = None,
    **columns: Any,
) -> Meeting:
    """A meeting row of ``minutes`` from ``start`` (rows or ids for ``teacher`` and
    ``guardian``), created and updated at ``now`` (default: ``start``), with a fresh
    ``uid`` unless given.  Every other column has its default (sequence 0, origin "offer",
    NEEDS-ACTION, no link, no location, no re-proposals) unless ``columns`` names it.

    Nothing checks the meeting against the booking rules: a test of the store's own
    constraints (two meetings on one slot) makes what the engine never would.
    """
    stamp = now or start
    meeting = Meeting(
        uid=uid or f"meeting-{next(_UIDS)}@factory.test",
        period_id=period_id,
        teacher_id=teacher if isinstance(teacher, int) else teacher.id,
        guardian_id=guardian if isinstance(guardian, int) else guardian.id,
        start=start,
        end=start + timedelta(minutes=minutes),
        state=state,
        sequence=0,
        origin="offer",
        organizer="",
        partstat="NEEDS-ACTION",
        video_url="",
        location="",
        reproposals=0,
        created_at=stamp,
        updated_at=stamp,
    )
    for column, value in columns.items():
        if not hasattr(Meeting, column):
            raise TypeError(f"Meeting has no column {column!r}")
        setattr(meeting, column, value)
    session.add(meeting)
    session.flush()
    return meeting


# --- through the command line -----------------------------------------------------------------


def invitations(sink: SmtpSink) -> dict[str, bytes]:
    """Invitations received by the sink, by meeting UID (the latest per UID)."""
    found: dict[str, bytes] = {}
    for mail in sink.received:
        for part in parse(mail.raw).walk():
            if part.get_content_type() == "text/calendar":
                cal = calendar_part(mail.raw)
                if str(cal.get("METHOD")) == "REQUEST":
                    found[str(cal.events[0]["UID"])] = mail.raw
                break
    return found


class Invitation(NamedTuple):
    #: The meeting as ``meetings --format json`` lists it.
    meeting: dict[str, Any]
    #: The invitation email its guardian received (an iTIP REQUEST).
    raw: bytes


def make_invitation(
    school: School,
    sink: SmtpSink,
    *,
    teacher: str | None = None,
    guardian: str | None = None,
    invite: bool = True,
) -> Invitation:
    """Run ``ptm-sync invite`` (unless ``invite`` is false: it ran already) and return a
    meeting it proposed with the invitation its guardian received.

    The meeting is the first ``meetings`` lists with ``teacher`` and ``guardian`` (each
    when given); given both, it must be the only one (a guardian meets a teacher once).
    The invitation is the one REQUEST for that meeting sent to the guardian: exactly one,
    or this fails.
    """
    if invite:
        school.run("invite")
    meetings = school.meetings(teacher=teacher) if teacher else school.meetings()
    if guardian is not None:
        meetings = [m for m in meetings if m["guardian"] == guardian]
    if teacher is not None and guardian is not None:
        assert len(meetings) == 1, meetings
    assert meetings, f"no meeting proposed with {teacher or guardian or 'anyone'}"
    meeting = meetings[0]
    requests = [
        mail.raw
        for mail in sink.received
        if to_address(mail.raw) == meeting["guardian"] and _request_uid(mail.raw) == meeting["uid"]
    ]
    assert len(requests) == 1, f"{len(requests)} invitations for meeting {meeting['id']}"
    return Invitation(meeting, requests[0])


def _request_uid(raw: bytes) -> str | None:
    """The UID of the event an iTIP REQUEST email carries; None for any other email."""
    if not any(part.get_content_type() == "text/calendar" for part in parse(raw).walk()):
        return None
    cal = calendar_part(raw)
    if str(cal.get("METHOD")) != "REQUEST" or not cal.events:
        return None
    return str(cal.events[0]["UID"])
