"""The retention period: personal data of meetings long over is deleted (DESIGN §3, §8
``[retention]``; `ptm-sync purge --before DATE` and the daily ``purge`` job).

A meeting that ENDED before the cutoff loses, in one transaction per batch of meetings:

* its own rows' personal text, written by the one writer (:meth:`Applier.purge`): the
  history's reasons, its location, a parent organizer's address; ``purged_at`` is set;
* its staff notes (deleted) and the families' feedback texts (emptied);
* the inbound messages about it: their bodies and senders;
* the outbox rows of it that are done (their payloads: the emails and events as sent) or
  dead (deleted: nothing can deliver them any more); so are emails about no one meeting (a
  notification, a nudge, a digest) sent before the cutoff;
* our copy of its event in the teacher's calendar mirror: attendees, organizer, summary,
  description, location (:func:`~ptm_sync.core.ical.scrub.without_people`); the teacher's
  own calendar is the teacher's.

Guardians and students who left the roster (``retired_at``) and have no meeting left that
is not purged are then made anonymous: name emptied, address or student id replaced by
``purged-<id>``, the emails sent to them emptied.  The rows stay, so that `report`'s counts
(meetings by state, moves from the history's times, households from the meetings' guardian
and student ids) are the same before and after.  What stays is states, times and ids.

On SQLite the database file is then rebuilt (``VACUUM``) and its write-ahead log emptied,
so that deleted text does not linger in free pages of the file.

``[retention] quarantine_days``: the body of a quarantined message older than that is
deleted (its reason, time and sender stay for `quarantine`); 0 keeps them.

A dry run (`purge --before DATE --dry-run`) does the same work in one transaction that is
rolled back: it counts exactly what the purge would, and changes nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Calendar,
    CalendarEvent,
    Database,
    Feedback,
    Guardian,
    Inbound,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingNote,
    MeetingStudent,
    Outbox,
    Student,
)
from ptm_sync.app.booking.apply import Applier
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.decide import QUARANTINED
from ptm_sync.core.ical.scrub import without_people
from ptm_sync.core.model import OutboxState

log = logging.getLogger(__name__)

#: Meetings purged per transaction: the daemon's other writers wait for no longer.
BATCH = 200
#: An outbox row's payload once purged.
PURGED_PAYLOAD = "{}"
#: Moves what the write-ahead log holds into the database file and empties the log.
_CHECKPOINT = "PRAGMA wal_checkpoint(TRUNCATE)"


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge deleted: meetings purged, then what of theirs, then people made
    anonymous, then quarantined bodies deleted (counts only)."""

    meetings: int = 0
    notes: int = 0
    feedback: int = 0
    messages: int = 0
    outbox: int = 0
    events: int = 0
    guardians: int = 0
    students: int = 0
    quarantined: int = 0

    def __add__(self, other: PurgeResult) -> PurgeResult:
        return PurgeResult(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(PurgeResult))
        )

    @property
    def changed(self) -> bool:
        return any(getattr(self, f.name) for f in fields(PurgeResult))

    def __str__(self) -> str:
        """One sentence, for the ``purge`` job's last result."""
        return (
            f"{_plural(self.meetings, 'meeting')} purged; "
            f"{_plural(self.guardians + self.students, 'person', 'people')} made anonymous; "
            f"{_plural(self.quarantined, 'quarantined body', 'quarantined bodies')} deleted"
        )

    def lines(self, *, dry_run: bool = False) -> list[str]:
        """What `purge` prints: counts, no names (``dry_run``: what a purge would do)."""
        would = "would be " if dry_run else ""
        return [
            f"meetings {would}purged: {self.meetings}",
            f"  notes {would}deleted: {self.notes}; feedback texts: {self.feedback}; "
            f"message bodies: {self.messages}; outbox payloads: {self.outbox}; "
            f"calendar copies: {self.events}",
            f"people who left the roster {would}made anonymous: {self.guardians} guardians, "
            f"{self.students} students",
            f"quarantined message bodies {would}deleted: {self.quarantined}",
        ]


def purge(
    db: Database, config: Config, *, before: datetime, now: datetime, dry_run: bool = False
) -> PurgeResult:
    """Delete the personal data of every meeting that ended before ``before`` (and before
    ``now``: a meeting still to come is never touched), then make anonymous who left the
    roster and has no meeting left.  Times aware; returns the counts.  Running it again
    changes nothing (a purged meeting is skipped, what was caught up is caught up).

    ``dry_run``: the same work in one transaction that is rolled back: the counts of what
    would be purged, and nothing changes.
    """
    cutoff = min(before, now)
    if dry_run:
        return _dry_run(db, cutoff, now)
    with db.read() as session:
        ids = _due(session, cutoff)
    result = PurgeResult()
    for start in range(0, len(ids), BATCH):
        with db.write() as session:
            result += _purge_meetings(session, ids[start : start + BATCH], now)
    with db.write() as session:
        result += _catch_up(session, cutoff)
        result += _anonymize(session)
    if result.changed:
        compact(db)
        log.info(
            "purge: %d meetings, %d guardians and %d students made anonymous",
            result.meetings,
            result.guardians,
            result.students,
        )
    return result


def _due(session: Session, cutoff: datetime) -> list[int]:
    """The meetings not purged yet that ended before ``cutoff``, by id."""
    return list(
        session.scalars(
            select(Meeting.id)
            .where(Meeting.end < cutoff, Meeting.purged_at.is_(None))
            .order_by(Meeting.id)
        )
    )


class _Undo(Exception):
    """Rolls a dry run's transaction back, carrying what it would have purged."""

    def __init__(self, result: PurgeResult) -> None:
        self.result = result


def _dry_run(db: Database, cutoff: datetime, now: datetime) -> PurgeResult:
    """What :func:`purge` would do, worked out in one transaction and rolled back."""
    try:
        with db.write() as session:
            ids, result = _due(session, cutoff), PurgeResult()
            for start in range(0, len(ids), BATCH):  # the statements' sizes of a purge
                result += _purge_meetings(session, ids[start : start + BATCH], now)
            result += _catch_up(session, cutoff)
            result += _anonymize(session)
            raise _Undo(result)
    except _Undo as undone:
        return undone.result


def purge_due(db: Database, config: Config, *, now: datetime) -> PurgeResult:
    """The daily ``purge`` job: meetings that ended ``[retention] meetings_days`` before
    ``now`` (0: none), and quarantined bodies older than ``quarantine_days`` (0: none)."""
    retention = config.retention
    result = PurgeResult()
    if retention.meetings_days > 0:
        result += purge(db, config, before=now - timedelta(days=retention.meetings_days), now=now)
    if retention.quarantine_days > 0:
        before = now - timedelta(days=retention.quarantine_days)
        with db.write() as session:
            found = session.execute(
                update(Inbound)
                .where(
                    Inbound.outcome == QUARANTINED,
                    Inbound.received_at < before,
                    Inbound.raw.is_not(None),
                )
                .values(raw=None)
            )
        quarantined = PurgeResult(quarantined=_count(found))
        if quarantined.changed and not result.changed:
            compact(db)
        result += quarantined
    return result


def _purge_meetings(session: Session, ids: list[int], now: datetime) -> PurgeResult:
    purged = [meeting_id for meeting_id in ids if Applier.purge(session, meeting_id, now=now)]
    if not purged:
        return PurgeResult()
    notes = session.execute(delete(MeetingNote).where(MeetingNote.meeting_id.in_(purged)))
    feedback = session.execute(
        update(Feedback).where(Feedback.meeting_id.in_(purged), Feedback.text != "").values(text="")
    )
    causing = select(MeetingHistory.inbound_id).where(
        MeetingHistory.meeting_id.in_(purged), MeetingHistory.inbound_id.is_not(None)
    )
    answered = select(Feedback.inbound_id).where(
        Feedback.meeting_id.in_(purged), Feedback.inbound_id.is_not(None)
    )
    messages = session.execute(
        update(Inbound)
        .where(
            or_(
                Inbound.meeting_id.in_(purged),
                Inbound.id.in_(causing),
                Inbound.id.in_(answered),
            ),
            or_(Inbound.raw.is_not(None), Inbound.sender != ""),
        )
        .values(raw=None, sender="")
    )
    return PurgeResult(
        meetings=len(purged),
        notes=_count(notes),
        feedback=_count(feedback),
        messages=_count(messages),
    )


def _catch_up(session: Session, cutoff: datetime) -> PurgeResult:
    """What of purged meetings still names people: outbox rows delivered since the purge
    (or given up), and our events' copies in the mirror (a sync may bring them back).  And
    the emails about no one meeting (a notification, a nudge, a digest) sent before
    ``cutoff``."""
    purged = select(Meeting.id).where(Meeting.purged_at.is_not(None))
    old = or_(
        Outbox.meeting_id.in_(purged),
        Outbox.meeting_id.is_(None) & (Outbox.created_at < cutoff),
    )
    done = session.execute(
        update(Outbox)
        .where(old, Outbox.state == OutboxState.DONE, Outbox.payload != PURGED_PAYLOAD)
        .values(payload=PURGED_PAYLOAD)
    )
    dead = session.execute(delete(Outbox).where(old, Outbox.state == OutboxState.DEAD))
    events = 0
    copies = session.scalars(
        select(CalendarEvent)
        .join(Calendar, Calendar.id == CalendarEvent.calendar_id)
        .join(
            Meeting,
            (Meeting.uid == CalendarEvent.uid) & (Meeting.teacher_id == Calendar.teacher_id),
        )
        .where(Meeting.purged_at.is_not(None))
    )
    for copy in copies:
        scrubbed = without_people(copy.ics)
        if scrubbed is not None and scrubbed != copy.ics:
            copy.ics = scrubbed
            events += 1
    return PurgeResult(outbox=_count(done) + _count(dead), events=events)


def _anonymize(session: Session) -> PurgeResult:
    """Guardians and students who left the roster and have no meeting left unpurged."""
    unpurged = select(Meeting.id).where(Meeting.purged_at.is_(None))
    guardians = session.scalars(
        select(Guardian).where(
            Guardian.retired_at.is_not(None),
            ~exists().where(
                MeetingGuardian.guardian_id == Guardian.id,
                MeetingGuardian.meeting_id.in_(unpurged),
            ),
        )
    )
    made = [0, 0]
    for guardian in guardians:
        anonymous = f"purged-{guardian.id}@invalid"
        if guardian.email != anonymous or guardian.name:
            _sent_to(session, guardian.email)
            guardian.email, guardian.name, guardian.language = anonymous, "", ""
            made[0] += 1
    students = session.scalars(
        select(Student).where(
            Student.retired_at.is_not(None),
            ~exists().where(
                MeetingStudent.student_id == Student.id,
                MeetingStudent.meeting_id.in_(unpurged),
            ),
        )
    )
    for student in students:
        anonymous = f"purged-{student.id}"
        if student.student_id != anonymous or student.name:
            student.student_id, student.name = anonymous, ""
            made[1] += 1
    return PurgeResult(guardians=made[0], students=made[1])


def _sent_to(session: Session, email: str) -> None:
    """The emails delivered to (or given up for) ``email`` lose their payloads: the address
    is about to be made anonymous."""
    to = Outbox.payload.contains(json.dumps(email), autoescape=True)
    session.execute(
        update(Outbox)
        .where(to, Outbox.state == OutboxState.DONE, Outbox.payload != PURGED_PAYLOAD)
        .values(payload=PURGED_PAYLOAD)
    )
    session.execute(delete(Outbox).where(to, Outbox.state == OutboxState.DEAD))


def compact(db: Database) -> None:
    """On SQLite, rebuild the database file and empty its write-ahead log, so that deleted
    text does not stay behind in free pages (PostgreSQL's autovacuum reclaims its own).
    A failure (another process holds the database) is logged: the next purge tries again."""
    if db.dialect != "sqlite":
        return
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement in (
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ):
            cursor.execute(statement)
        cursor.close()
    except sqlite3.Error as exc:
        log.warning("purge: the database file was not compacted (%s); tried again next time", exc)
    finally:
        raw.close()


def _plural(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
