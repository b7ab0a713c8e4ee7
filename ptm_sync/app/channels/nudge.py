"""`nudge` (DESIGN §7): email the households that have not booked yet how to book.

The households are those of ``report --unbooked`` (:mod:`ptm_sync.app.read.report`): no
confirmed or completed meeting with a teacher they need.  Each gets one email per period
naming those teachers, with the invitation still waiting for its answer (if any), the
teacher's booking address, the period's page of free times (``[web] public_url``) and the
office's contact (:func:`ptm_sync.core.booking.nudge_text.nudge`).

At most once a day per household: the email's Message-ID is made from the period, the
household and the school's local date, and the outbox key ``email:<Message-ID>`` is unique,
so a second run on the same day enqueues nothing (on any number of replicas at once).

The email is about a household, not one meeting: like the staff digest it is enqueued here,
with no meeting id, beside the applier (``tests/integration/test_one_writer.py`` lists it
in ``NOT_A_MEETINGS_EFFECT``).  Delivery is the outbox's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Outbox,
    Student,
    Teacher,
)
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.app import outbox
from ptm_sync.app.booking import load
from ptm_sync.app.booking.effects import email_row
from ptm_sync.app.read import report
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core import imip, trust
from ptm_sync.core.booking.addresses import booking_address
from ptm_sync.core.booking.nudge_text import ToBook
from ptm_sync.core.booking.nudge_text import nudge as nudge_text
from ptm_sync.core.booking.record import Unbooked
from ptm_sync.core.errors import BookingRefused
from ptm_sync.core.model import Interval, MeetingState


@dataclass(frozen=True, slots=True)
class Need:
    """A teacher (email) the household has not booked, and what the email says of it."""

    teacher: str
    to_book: ToBook


@dataclass(frozen=True, slots=True)
class Target:
    """One household to nudge in ``period``: its ``guardians`` (emails, sorted) and names,
    the teachers it has not booked, and the email's ``message_id``."""

    period: str
    guardians: tuple[str, ...]
    names: tuple[str, ...]
    teachers: tuple[Need, ...]
    message_id: str


@dataclass(frozen=True, slots=True)
class NudgePlan:
    """``due``: the households to email now; ``already``: those emailed earlier today."""

    due: tuple[Target, ...]
    already: tuple[Target, ...]


def is_open(config: Config, period: PeriodConfig, now: datetime) -> bool:
    """Whether families can book in ``period`` at ``now``: booking has opened, has not
    closed, and the period's last window has not ended."""
    opens = period.booking_opens
    if opens is not None and now < opens:
        return False
    if load.rules(config, period).closed(now):
        return False
    return any(w.end > now for w in period.windows)


def periods_to_nudge(config: Config, period_id: str | None, now: datetime) -> list[PeriodConfig]:
    """The period named ``period_id``, or every period open for booking at ``now``.

    Raises:
        ConfigError: no such period.
        BookingRefused: the period named is not open for booking (not yet, or any more).
    """
    if period_id is None:
        return [p for p in config.periods if is_open(config, p, now)]
    period = config.period(period_id)
    if not is_open(config, period, now):
        tz = config.tz
        opens = period.booking_opens
        if opens is not None and now < opens:
            local = opens.astimezone(tz)
            raise BookingRefused(
                f"booking for {period.id} opens at {local:%Y-%m-%d %H:%M}: nobody to nudge yet"
            )
        raise BookingRefused(f"booking for {period.id} is over: nobody to nudge")
    return [period]


def plan(db: Database, config: Config, periods: Sequence[PeriodConfig], now: datetime) -> NudgePlan:
    """Who ``nudge`` would email now, and who was emailed earlier today (nothing is
    written): ``--dry-run``."""
    with db.read() as session:
        return _plan(session, config, periods, now)


def nudge(
    db: Database, config: Config, periods: Sequence[PeriodConfig], now: datetime
) -> NudgePlan:
    """Enqueue today's email to each household not booked yet in ``periods``, unless it was
    enqueued today already; returns who was (``due``) and who had been (``already``).

    Raises:
        BookingRefused: ``[mail]`` is not configured (no sender).
    """
    if config.mail is None:
        raise BookingRefused("[mail] is not configured: no address to send from")
    with db.write() as session:
        found = _plan(session, config, periods, now)
        for target in found.due:
            row = email_row(
                _email(config, target, now),
                now=now,
                envelope_from=config.mail.organizer,
                to=target.guardians,
            )
            # A replica enqueuing the same key meanwhile is no error: the outbox keeps one.
            outbox.enqueue(session, key=row.key, kind=row.kind, payload=row.payload, now=now)
    return found


def _plan(
    session: Session, config: Config, periods: Sequence[PeriodConfig], now: datetime
) -> NudgePlan:
    found = _targets(session, config, periods, now)
    keys = [f"email:{t.message_id}" for t in found]
    sent = set(session.scalars(select(Outbox.key).where(Outbox.key.in_(keys))))
    return NudgePlan(
        due=tuple(t for t in found if f"email:{t.message_id}" not in sent),
        already=tuple(t for t in found if f"email:{t.message_id}" in sent),
    )


def _email(config: Config, target: Target, now: datetime) -> EmailMessage:
    assert config.mail is not None
    period = config.period(target.period)
    base = config.web.public_url.rstrip("/")
    text = nudge_text(
        school=config.school.name,
        period_title=period.title,
        guardian_names=target.names,
        teachers=[n.to_book for n in target.teachers],
        tz=config.tz,
        contact=config.school.contact,
        page_url=f"{base}/periods/{period.id}" if base else "",
        closes=period.booking_closes,
    )
    msg = imip.build_plain_email(
        sender=config.mail.organizer,
        sender_name=config.school.name,
        to=target.guardians[0],
        to_name=target.names[0] if len(target.guardians) == 1 else "",
        subject=text.subject,
        text=text.plain,
        html=text.html,
        message_id=target.message_id,
        date=now,
    )
    if len(target.guardians) > 1:  # one email to the household: every guardian on it
        msg.replace_header("To", ", ".join(target.guardians))
    return msg


def _targets(
    session: Session, config: Config, periods: Sequence[PeriodConfig], now: datetime
) -> list[Target]:
    mail = config.mail
    domain = (mail.organizer if mail else config.school.contact).rpartition("@")[2]
    day = now.astimezone(config.tz).date().isoformat()
    secret = signing_secret(session)
    teachers = {t.email: t for t in session.scalars(select(Teacher))}
    found: list[Target] = []
    for period in periods:
        by_household: dict[tuple[str, ...], list[Unbooked]] = {}
        for entry in report.unbooked(session, [period]):
            by_household.setdefault(entry.guardians, []).append(entry)
        if not by_household:
            continue
        people = _guardian_names(session, (g for key in by_household for g in key))
        students = _student_names(
            session, (s for entries in by_household.values() for e in entries for s in e.students)
        )
        waiting = _invitations(session, period.id)
        for guardians, entries in sorted(by_household.items()):
            needs = tuple(
                Need(
                    e.teacher,
                    ToBook(
                        teacher_name=teachers[e.teacher].name,
                        students=tuple(students.get(s, s) for s in e.students),
                        booking_address=booking_address(
                            teachers[e.teacher].key,
                            teachers[e.teacher].booking_address,
                            mail.booking_address if mail else "",
                            mail.organizer if mail else "",
                        ),
                        invitation=_first(waiting, e),
                    ),
                )
                for e in entries
            )
            household = trust.make_token(secret, f"nudge/{period.id}/{','.join(guardians)}")
            found.append(
                Target(
                    period=period.id,
                    guardians=guardians,
                    names=tuple(people.get(g, g) for g in guardians),
                    teachers=needs,
                    message_id=f"<nudge.{period.id}.{household}.{day}@{domain}>",
                )
            )
    return found


def _guardian_names(session: Session, emails: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(emails))
    return {
        e: n
        for e, n in session.execute(
            select(Guardian.email, Guardian.name).where(Guardian.email.in_(wanted))
        )
    }


def _student_names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    return {
        i: n
        for i, n in session.execute(
            select(Student.student_id, Student.name).where(Student.student_id.in_(wanted))
        )
    }


#: A proposal waiting for its answer: (teacher, students, guardians, time).
_Waiting = tuple[str, frozenset[str], frozenset[str], Interval]


def _invitations(session: Session, period_id: str) -> list[_Waiting]:
    """The period's proposals still waiting for an answer, soonest first."""
    students: dict[int, set[str]] = {}
    guardians: dict[int, set[str]] = {}
    meetings: dict[int, tuple[str, Interval]] = {}
    for meeting_id, teacher, start, end, student, guardian in session.execute(
        select(
            Meeting.id,
            Teacher.email,
            Meeting.start,
            Meeting.end,
            Student.student_id,
            Guardian.email,
        )
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
        .join(Student, Student.id == MeetingStudent.student_id)
        .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
        .join(Guardian, Guardian.id == MeetingGuardian.guardian_id)
        .where(Meeting.period_id == period_id, Meeting.state == MeetingState.PROPOSED)
    ):
        meetings[meeting_id] = (teacher, Interval(start, end))
        students.setdefault(meeting_id, set()).add(student)
        guardians.setdefault(meeting_id, set()).add(guardian)
    return sorted(
        (
            (teacher, frozenset(students[m]), frozenset(guardians[m]), slot)
            for m, (teacher, slot) in meetings.items()
        ),
        key=lambda w: w[3].start,
    )


def _first(waiting: Sequence[_Waiting], entry: Unbooked) -> Interval | None:
    """The soonest proposal to ``entry``'s household with its teacher, if one waits."""
    for teacher, students, guardians, slot in waiting:
        mine = students & set(entry.students) and guardians & set(entry.guardians)
        if teacher == entry.teacher and mine:
            return slot
    return None
