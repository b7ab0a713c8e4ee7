"""From the store to the core's values: a meeting as a :class:`MeetingView`, its context.

Reads only; the applier (:mod:`ptm_sync.app.booking.apply`) is the one writer.  The context is
read inside the caller's write transaction, so what the core decides on is what the
transaction sees (and the database's unique index settles any race it cannot see).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, selectinload

from ptm_sync.adapters.store import (
    Guardian,
    Link,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.app.read.availability import TimesRows, free_of, times_rows
from ptm_sync.app.video_links import link_source
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking.addresses import booking_address
from ptm_sync.core.booking.values import (
    FAMILY,
    FREE,
    LEFT,
    PENDING,
    TRIED,
    Context,
    Fresh,
    Left,
    MeetingView,
    Origin,
    Party,
    Rules,
    StudentInfo,
    TeacherInfo,
)
from ptm_sync.core.model import ACTIVE_STATES, Interval, LinkSource, MeetingFormat, MeetingState

_ACTIVE = [s.value for s in ACTIVE_STATES]


def rules(config: Config, period: PeriodConfig) -> Rules:
    """The period's booking rules, with the ``[booking_address]`` limits."""
    booking = config.booking_address
    return Rules(
        period=period.id,
        title=period.title,
        windows=tuple(period.windows),
        slot_minutes=period.slot_minutes,
        buffer_minutes=period.buffer_minutes,
        gap_minutes=period.gap_minutes,
        hold_hours=period.hold_hours,
        booking_closes=period.booking_closes,
        max_reproposals=period.max_reproposals,
        max_meetings_per_family=period.max_meetings_per_family,
        max_meetings_per_teacher=period.max_meetings_per_teacher,
        booking_window_days=booking.booking_window_days,
        maximum_duration_minutes=booking.maximum_duration_minutes,
        reminder_hours=period.reminder_hours,
    )


def teacher_info(config: Config, teacher: Teacher) -> TeacherInfo:
    mail = config.mail
    address = booking_address(
        teacher.key,
        teacher.booking_address or "",
        mail.booking_address if mail else "",
        mail.organizer if mail else config.school.contact,
    )
    return TeacherInfo(
        id=teacher.id,
        email=teacher.email,
        name=teacher.name,
        key=teacher.key,
        room=teacher.room or "",
        booking_address=address,
    )


def party(guardian: Guardian, link: MeetingGuardian | None = None) -> Party:
    if link is None:
        return Party(guardian_id=guardian.id, email=guardian.email, name=guardian.name)
    return Party(
        guardian_id=guardian.id,
        email=guardian.email,
        name=guardian.name,
        partstat=link.partstat,
        reply_sequence=link.reply_sequence,
        reply_dtstamp=link.reply_dtstamp,
    )


def student_info(student: Student) -> StudentInfo:
    return StudentInfo(id=student.id, student_id=student.student_id, name=student.name)


def view(config: Config, meeting: Meeting, teacher: Teacher) -> MeetingView:
    """``meeting`` (with its guardians and students loaded) as a value."""
    links = sorted(
        meeting.guardians, key=lambda a: (a.guardian_id != meeting.guardian_id, a.guardian_id)
    )
    students = sorted((ms.student for ms in meeting.students), key=lambda s: s.id)
    return MeetingView(
        id=meeting.id,
        uid=meeting.uid,
        period=meeting.period_id,
        teacher=teacher_info(config, teacher),
        parties=tuple(party(link.guardian, link) for link in links),
        students=tuple(student_info(s) for s in students),
        start=meeting.start,
        end=meeting.end,
        state=MeetingState(meeting.state),
        sequence=meeting.sequence,
        origin=Origin(meeting.origin),
        organizer=meeting.organizer,
        hold_until=meeting.hold_until,
        video_url=meeting.video_url,
        location=meeting.location,
        reproposals=meeting.reproposals,
        replaces=meeting.replaces_id,
        remote_href=meeting.remote_href,
        remote_etag=meeting.remote_etag,
        remote_slot=(
            Interval(meeting.remote_start, meeting.remote_end)
            if meeting.remote_start is not None and meeting.remote_end is not None
            else None
        ),
        remote_edited=meeting.remote_edited,
        link_pending=meeting.link_pending,
        reminded=meeting.reminded_start,
        feedback_token=meeting.feedback_token,
    )


def draft(
    config: Config,
    period: PeriodConfig,
    teacher: Teacher,
    guardians: Sequence[Guardian],
    students: Sequence[Student],
    slot: Interval,
    *,
    fresh: Fresh,
    origin: Origin = Origin.OFFER,
) -> MeetingView:
    """A meeting about to be created (``state`` None) with ``fresh``'s identity."""
    invited = {g.id: g for g in guardians}  # the primary first, each once
    utc = slot.utc()
    return MeetingView(
        id=None,
        uid=fresh.uid,
        period=period.id,
        teacher=teacher_info(config, teacher),
        parties=tuple(party(g) for g in invited.values()),
        students=tuple(student_info(s) for s in sorted(students, key=lambda s: s.id)),
        start=utc.start,
        end=utc.end,
        state=None,
        origin=origin,
        organizer=fresh.organizer,
        video_url=fresh.video_url,
        location=location(period, teacher),
    )


def parties(
    session: Session,
    period: PeriodConfig,
    guardian: Guardian,
    teacher: Teacher,
    students: Sequence[Student],
) -> list[Guardian]:
    """Who a meeting of ``guardian``'s ``students`` with ``teacher`` is between: ``guardian``
    first, then every other guardian linked to those students and the teacher, in roster
    order — unless one of the students meets separately (``meeting_mode``, the roster's or
    the period's), when ``guardian`` alone."""
    if any((s.meeting_mode or period.meeting_mode) == "separate" for s in students):
        return [guardian]
    others = session.scalars(
        select(Guardian)
        .join(Link, Link.guardian_id == Guardian.id)
        .where(
            Link.teacher_id == teacher.id,
            Link.student_id.in_([s.id for s in students]),
            Guardian.retired_at.is_(None),  # who left the roster is invited no more
        )
        .order_by(Link.id)
    )
    people = {guardian.id: guardian}
    for other in others:
        people.setdefault(other.id, other)
    return list(people.values())


def link_from(config: Config, period: PeriodConfig, account: str) -> LinkSource:
    """Where the video link of a meeting of ``period`` with a teacher on ``account`` comes
    from (:func:`~ptm_sync.app.video_links.link_source`; none in an in-person period)."""
    if period.format == MeetingFormat.IN_PERSON:
        return LinkSource.NONE
    return link_source(config, account)


def location(period: PeriodConfig, teacher: Teacher) -> str:
    """Where an in-person meeting happens: the period's template with the teacher's room."""
    if period.format == MeetingFormat.VIDEO:
        return ""
    if period.location:
        return period.location.replace("{room}", teacher.room or "")
    return f"Room {teacher.room}" if teacher.room else ""


def meetings_by_id(session: Session, ids: Collection[int]) -> list[Meeting]:
    """Meetings with their guardians and students, ready for :func:`view`."""
    if not ids:
        return []
    return list(
        session.scalars(
            select(Meeting)
            .where(Meeting.id.in_(list(ids)))
            .options(
                selectinload(Meeting.guardians).selectinload(MeetingGuardian.guardian),
                selectinload(Meeting.students).joinedload(MeetingStudent.student),
            )
            .order_by(Meeting.id)
        )
    )


def context(
    session: Session,
    config: Config,
    meeting: MeetingView,
    now: datetime,
    *,
    needs: Collection[str],
    fresh: Fresh | None = None,
    is_guardian: bool = True,
    in_roster: bool = True,
) -> Context:
    """What the core needs besides ``meeting``: only the parts named in ``needs``.

    With ``PENDING`` (a booking that supersedes the family's unanswered proposals for the
    same need), those proposals hold no slot and are no other meeting of the family's:
    the booking replaces them, so the family may take the very time it was offered.
    """
    period = config.period(meeting.period)
    the_rules = rules(config, period)
    teacher = session.get(Teacher, meeting.teacher.id)
    assert teacher is not None
    ctx = Context(
        rules=the_rules,
        now=now,
        fresh=fresh,
        is_guardian=is_guardian,
        in_roster=in_roster,
        location=location(period, teacher),
        link_from=link_from(config, period, teacher.account),
    )
    replaced: set[int] = set()
    if PENDING in needs:
        pending_ids, booked = _open_for_need(session, meeting)
        pending = [view(config, m, teacher) for m in meetings_by_id(session, pending_ids)]
        ctx = replace(ctx, pending=tuple(pending), booked=booked)
        replaced = set(pending_ids)
    own = (meeting.id or -1, meeting.uid)
    if FREE in needs:
        free, count = _free(session, period, teacher, own, replaced)
        ctx = replace(ctx, free=tuple(free), teacher_count=count)  # grid slots: UTC already
    if FAMILY in needs:
        family = _family(session, meeting, replaced)
        ctx = replace(ctx, family=family, family_count=len(family))
    if TRIED in needs:
        ctx = replace(ctx, tried=_tried(session, meeting))
    if LEFT in needs:
        ctx = replace(ctx, left=_left(session, meeting, teacher))
    return ctx


# Built once (every booking decision runs them): the meetings of a family, and those of a
# "need" — the same teacher and period, one of the same students, one of the same
# guardians (separated parents' meetings are each their own need).
_FAMILY = (
    select(Meeting.id, Meeting.start, Meeting.end)
    .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
    .where(
        MeetingGuardian.guardian_id.in_(bindparam("guardians", expanding=True)),
        Meeting.period_id == bindparam("period"),
        Meeting.state.in_(_ACTIVE),
    )
    .distinct()
)
_NEED = (
    select(Meeting.id, Meeting.state, Meeting.start, Meeting.end)
    .where(
        Meeting.teacher_id == bindparam("teacher"),
        Meeting.period_id == bindparam("period"),
        Meeting.id.in_(
            select(MeetingStudent.meeting_id).where(
                MeetingStudent.student_id.in_(bindparam("students", expanding=True))
            )
        ),
        Meeting.id.in_(
            select(MeetingGuardian.meeting_id).where(
                MeetingGuardian.guardian_id.in_(bindparam("guardians", expanding=True))
            )
        ),
    )
    .order_by(Meeting.id)
)


#: Where a transaction keeps the teacher times it read (``Session.info``): a batch of
#: messages (the IMAP path's group commit) asks about the same teachers again and again,
#: and most decisions change nothing.  The applier forgets a teacher's times when it
#: writes one of their meetings; another transaction's booking of a slot is still refused
#: by the database (and the applier then decides again on fresh times).
_TIMES = "ptm_sync.teacher_times"


def _free(
    session: Session,
    period: PeriodConfig,
    teacher: Teacher,
    own: tuple[int, str],
    replaced: Collection[int] = (),
) -> tuple[list[Interval], int]:
    kept: dict[tuple[str, int], TimesRows] = session.info.setdefault(_TIMES, {})
    rows = kept.get((period.id, teacher.id))
    if rows is None:
        rows = kept[(period.id, teacher.id)] = times_rows(session, period, [teacher.id])
    return free_of(rows, period, teacher.id, own_meeting=own, replaced=replaced)


def forget_times(session: Session, period: str, teacher_id: int) -> None:
    """The teacher's times changed in this transaction: read them again when asked."""
    session.info.get(_TIMES, {}).pop((period, teacher_id), None)


def _family(
    session: Session, meeting: MeetingView, replaced: Collection[int] = ()
) -> tuple[Interval, ...]:
    """The other active meetings in the period of any of the meeting's guardians (but the
    proposals a booking replaces)."""
    rows = session.execute(
        _FAMILY,
        {"guardians": [p.guardian_id for p in meeting.parties], "period": meeting.period},
    )
    return tuple(
        Interval(start, end).utc()
        for meeting_id, start, end in rows
        if meeting_id != meeting.id and meeting_id not in replaced
    )


def _need(session: Session, meeting: MeetingView) -> list[tuple[int, str, datetime, datetime]]:
    """Every meeting of the same need, in any state: (id, state, start, end)."""
    rows = session.execute(
        _NEED,
        {
            "teacher": meeting.teacher.id,
            "period": meeting.period,
            "students": [s.id for s in meeting.students],
            "guardians": [p.guardian_id for p in meeting.parties],
        },
    )
    return [(int(i), str(state), start, end) for i, state, start, end in rows]


def _left(session: Session, meeting: MeetingView, teacher: Teacher) -> Left:
    """Who of ``meeting`` left the roster (``retired_at`` set by ``roster import --replace``)."""
    guardians = session.scalars(
        select(Guardian.id).where(
            Guardian.id.in_([p.guardian_id for p in meeting.parties]),
            Guardian.retired_at.is_not(None),
        )
    )
    students = session.scalars(
        select(Student.id).where(
            Student.id.in_([s.id for s in meeting.students]), Student.retired_at.is_not(None)
        )
    )
    return Left(
        teacher=teacher.retired_at is not None,
        guardians=frozenset(guardians),
        students=frozenset(students),
    )


def _tried(session: Session, meeting: MeetingView) -> tuple[Interval, ...]:
    """Every time already offered to this family for this need, in any state."""
    return tuple(Interval(s, e).utc() for _, _, s, e in _need(session, meeting))


def _open_for_need(
    session: Session, meeting: MeetingView
) -> tuple[list[int], tuple[Interval, ...]]:
    """The same need's unanswered proposals (a new booking supersedes them) and its
    confirmed meetings (a family books a teacher once), the meeting itself aside."""
    others = [row for row in _need(session, meeting) if row[0] != meeting.id]
    pending = [i for i, state, _, _ in others if state == MeetingState.PROPOSED]
    booked = tuple(
        Interval(s, e).utc() for _, state, s, e in others if state == MeetingState.CONFIRMED
    )
    return pending, booked
