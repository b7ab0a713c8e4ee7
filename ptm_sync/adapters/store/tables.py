"""The tables: SQLAlchemy 2 typed models.

Times are UTC (:class:`UtcDateTime`).  The meetings table carries the rule that makes a
double booking impossible whatever the application does: a partial unique index on
``(teacher_id, start)`` over the active states, and a refusal of overlapping time ranges:
on PostgreSQL an exclusion constraint (migration 0001), on SQLite triggers (migration 0011:
a late move leaves the grid, where two meetings can overlap without starting together).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ptm_sync.adapters.store.types import StrEnumColumn, UtcDateTime
from ptm_sync.core.model import Actor, MeetingState, OutboxKind, OutboxState, WaitlistState

#: SQL for "the meeting occupies its slot"; must match model.ACTIVE_STATES.
ACTIVE_SQL = "state IN ('proposed', 'confirmed')"


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Small key/value facts the service keeps for itself (e.g. the UID signing key)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Period(Base):
    __tablename__ = "periods"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))


class Teacher(Base):
    __tablename__ = "teachers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(100), unique=True)
    account: Mapped[str] = mapped_column(String(64))
    calendar: Mapped[str] = mapped_column(Text)
    room: Mapped[str] = mapped_column(String(100), default="")
    booking_address: Mapped[str] = mapped_column(String(320), default="")
    #: Where the roster row came from (``teachers.csv:3``): ``check`` names it.
    source: Mapped[str] = mapped_column(Text, default="")
    #: Missing from a ``roster import --replace`` since then (None: in the roster).
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Student(Base):
    """A student.  ``meeting_mode``: ``joint`` or ``separate`` (whether the student's
    guardians meet a teacher together or each on their own); "" follows the period."""

    __tablename__ = "students"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    student_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    meeting_mode: Mapped[str] = mapped_column(String(10), default="", server_default="")
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Guardian(Base):
    __tablename__ = "guardians"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(35), default="")
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Link(Base):
    """A guardian of a student who sees a teacher: the unit the planner books for."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("guardian_id", "student_id", "teacher_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id", ondelete="CASCADE"))


class Calendar(Base):
    """Sync state of one teacher's calendar."""

    __tablename__ = "calendars"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teacher_id: Mapped[int] = mapped_column(
        ForeignKey("teachers.id", ondelete="CASCADE"), unique=True
    )
    account: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    sync_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    ctag: Mapped[str | None] = mapped_column(Text, nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The last read's problem (a :class:`~ptm_sync.core.errors.CalendarProblem` value): an
    #: error's kind, or ``no_data`` when the read was whole but had spans without data.
    problem: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The owner's calendar-user addresses the server named, space-separated (RFC 6638).
    owner_addresses: Mapped[str | None] = mapped_column(Text, nullable=True)


class CalendarEvent(Base):
    """The local mirror of one calendar object resource of a teacher's calendar."""

    __tablename__ = "calendar_events"
    __table_args__ = (UniqueConstraint("calendar_id", "href"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    href: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    uid: Mapped[str] = mapped_column(Text, default="")
    ics: Mapped[str] = mapped_column(Text)
    busy: Mapped[list[BusyTime]] = relationship(
        back_populates="event", cascade="all, delete-orphan", passive_deletes=True
    )


class BusyTime(Base):
    """A busy interval expanded from a mirrored event, bounded to the synced window."""

    __tablename__ = "busy_times"
    __table_args__ = (Index("ix_busy_times_teacher_start", "teacher_id", "start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendar_events.id", ondelete="CASCADE"), nullable=True
    )
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    tentative: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A span the calendar system had no data for: offers no slot, shown ``not_synced``.
    unknown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    event: Mapped[CalendarEvent | None] = relationship(back_populates="busy")


class SchoolFeed(Base):
    """A calendar whose busy times block every teacher (``blocks = "everyone"``): the school
    events feed.  One row per account, with its sync state like :class:`Calendar`."""

    __tablename__ = "school_feeds"
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    sync_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    busy: Mapped[list[SchoolBusy]] = relationship(
        back_populates="feed", cascade="all, delete-orphan", passive_deletes=True
    )


class SchoolBusy(Base):
    """A busy interval of a school feed, bounded to the synced window (UTC)."""

    __tablename__ = "school_busy"
    __table_args__ = (Index("ix_school_busy_start", "start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(
        ForeignKey("school_feeds.account", ondelete="CASCADE"), index=True
    )
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    tentative: Mapped[bool] = mapped_column(Boolean, default=False)
    feed: Mapped[SchoolFeed] = relationship(back_populates="busy")


class Meeting(Base):
    """One meeting of a teacher with a family.

    ``guardian_id`` is the primary guardian (the first one linked to the student); every
    guardian invited, the primary included, has a :class:`MeetingGuardian` row with their
    own answer.  ``partstat`` is the family's answer as a whole (ACCEPTED while any of its
    guardians attends, else the last answer applied); ``reply_sequence`` and
    ``reply_dtstamp`` are those of the last reply applied, from whichever guardian.
    """

    __tablename__ = "meetings"
    __table_args__ = (
        Index(
            "uq_meetings_active_slot",
            "teacher_id",
            "start",
            unique=True,
            sqlite_where=text(ACTIVE_SQL),
            postgresql_where=text(ACTIVE_SQL),
        ),
        Index("ix_meetings_guardian", "guardian_id"),
        Index("ix_meetings_teacher_period", "teacher_id", "period_id"),
        Index("ix_meetings_state", "state"),
        Index("uq_meetings_feedback_token", "feedback_token", unique=True),
        CheckConstraint('"end" > start', name="ck_meetings_positive"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(255), unique=True)
    period_id: Mapped[str] = mapped_column(ForeignKey("periods.id"))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id"))
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id"))
    start: Mapped[datetime] = mapped_column(UtcDateTime)
    end: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[MeetingState] = mapped_column(StrEnumColumn(MeetingState))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    origin: Mapped[str] = mapped_column(String(20), default="offer")
    organizer: Mapped[str] = mapped_column(String(320), default="")
    partstat: Mapped[str] = mapped_column(String(20), default="NEEDS-ACTION")
    video_url: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    hold_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reply_sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_dtstamp: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reproposals: Mapped[int] = mapped_column(Integer, default=0)
    # The meeting a re-proposal follows: a plain id, kept when a purge removes that one.
    replaces_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_href: Mapped[str | None] = mapped_column(Text, nullable=True)
    remote_etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The time the event was at in the version we know (our write, the teacher's move).
    remote_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    remote_end: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The teacher edited the event's text: our writes keep it.
    remote_edited: Mapped[bool] = mapped_column(Boolean, server_default=false())
    #: The parents' confirmation waits for the video link made after confirmation.
    link_pending: Mapped[bool] = mapped_column(Boolean, server_default=false())
    #: The start (UTC) the family was last reminded of: a moved meeting is reminded again.
    reminded_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The feedback request's per-meeting token (None: not asked yet).
    feedback_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: When ``purge`` deleted the meeting's personal data (None: not purged).
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    students: Mapped[list[MeetingStudent]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )
    guardians: Mapped[list[MeetingGuardian]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True
    )


class MeetingGuardian(Base):
    """A guardian who is a party of a meeting, with that guardian's own answer.

    Every guardian of the meeting's student(s) is invited; each answers for themselves, and
    the ordering rule (higher SEQUENCE, then later DTSTAMP) holds per attendee (DESIGN §4),
    so the last reply applied is kept here, per guardian (migration 0002).
    """

    __tablename__ = "meeting_guardians"
    __table_args__ = (Index("ix_meeting_guardians_guardian", "guardian_id"),)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True
    )
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id"), primary_key=True)
    partstat: Mapped[str] = mapped_column(
        String(20), default="NEEDS-ACTION", server_default="NEEDS-ACTION"
    )
    reply_sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply_dtstamp: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    guardian: Mapped[Guardian] = relationship()


class MeetingStudent(Base):
    __tablename__ = "meeting_students"
    __table_args__ = (Index("ix_meeting_students_student", "student_id"),)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True
    )
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), primary_key=True)
    student: Mapped[Student] = relationship()


class MeetingHistory(Base):
    """Append-only record of every transition: the school's record of meetings."""

    __tablename__ = "meeting_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[Actor] = mapped_column(StrEnumColumn(Actor))
    from_state: Mapped[MeetingState | None] = mapped_column(
        StrEnumColumn(MeetingState), nullable=True
    )
    to_state: Mapped[MeetingState] = mapped_column(StrEnumColumn(MeetingState))
    old_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    new_start: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound.id"), nullable=True)


class WaitlistEntry(Base):
    """A family waiting for a free time with a teacher (DESIGN §3, issue 6).

    ``state``: ``waiting``; ``offered`` once a freed slot was proposed to it (``meeting_id``);
    ``left`` when the family no longer waits (booked otherwise, or removed by staff).
    Served in ``id`` order: first come, first served.
    """

    __tablename__ = "waitlist"
    __table_args__ = (Index("ix_waitlist_teacher", "period_id", "teacher_id", "state"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_id: Mapped[str] = mapped_column(ForeignKey("periods.id"))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("teachers.id", ondelete="CASCADE"))
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id", ondelete="CASCADE"))
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[WaitlistState] = mapped_column(
        StrEnumColumn(WaitlistState), default=WaitlistState.WAITING
    )
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), nullable=True
    )
    guardians: Mapped[str] = mapped_column(Text, default="")  # co-guardian ids, comma-separated
    students: Mapped[str] = mapped_column(Text, default="")  # student ids, comma-separated


class Outbox(Base):
    """A side effect to deliver: an email or a calendar write.  ``key`` makes it idempotent."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    kind: Mapped[OutboxKind] = mapped_column(StrEnumColumn(OutboxKind))
    payload: Mapped[str] = mapped_column(Text)
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[OutboxState] = mapped_column(
        StrEnumColumn(OutboxState), default=OutboxState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Inbound(Base):
    """Every inbound message we saw, and what became of it (quarantine included)."""

    __tablename__ = "inbound"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    message_id: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(320), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="SET NULL"), nullable=True
    )
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class JobRun(Base):
    """A scheduled job's last run and result (``ptm-sync jobs``, DESIGN §7), and the lease a
    process holds while it runs the job (``running_until``, ``running_by``)."""

    __tablename__ = "job_runs"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_run: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_result: Mapped[str] = mapped_column(Text, default="", server_default="")
    running_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    running_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class MeetingNote(Base):
    """A staff-only note on a meeting (DESIGN §3): shown by ``meetings show`` and the
    console, never to a family or in a calendar; purged with the meeting."""

    __tablename__ = "meeting_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    author: Mapped[str] = mapped_column(String(320), default="", server_default="")
    text: Mapped[str] = mapped_column(Text)


class Feedback(Base):
    """A family's answer to a feedback request, recorded against the meeting (DESIGN §3)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), index=True
    )
    guardian_id: Mapped[int | None] = mapped_column(
        ForeignKey("guardians.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    text: Mapped[str] = mapped_column(Text)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound.id", ondelete="SET NULL"), nullable=True
    )
