"""Domain values: intervals, slots, people, meetings and their states.

Pure: no I/O, no clock.  Datetimes are timezone-aware; the engine works in UTC and converts
to the school's zone only for display and for the period's local-time windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class MeetingState(StrEnum):
    """The life cycle of a meeting (DESIGN §3)."""

    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    DECLINED = "declined"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


#: States in which a meeting occupies its slot.
ACTIVE_STATES: frozenset[MeetingState] = frozenset({MeetingState.PROPOSED, MeetingState.CONFIRMED})


class SlotStatus(StrEnum):
    """A cell of the scheduling matrix (DESIGN §7: the matrix's JSON ``status``)."""

    AVAILABLE = "available"
    BUSY = "busy"
    HELD = "held"
    BOOKED = "booked"
    #: The teacher's calendar has never been read successfully: nothing is known about
    #: their time, so no slot is offered (distinct from ``busy``).
    NOT_SYNCED = "not_synced"


class MeetingFormat(StrEnum):
    VIDEO = "video"
    IN_PERSON = "in_person"
    EITHER = "either"


class LinkSource(StrEnum):
    """Where a meeting's video link comes from (DESIGN §3 "In person or video").

    ``now``: the provider makes it when the meeting is proposed (Jitsi), so the invitation
    carries it; ``calendar``: the teacher's calendar system makes it with the event when the
    meeting is confirmed (Teams on Microsoft Graph, Meet on Google); ``zoom``: the outbox
    makes a Zoom meeting once the meeting is confirmed; ``none``: no link (in person).
    For ``calendar`` and ``zoom`` the parent's confirmation waits for the link.
    """

    NOW = "now"
    CALENDAR = "calendar"
    ZOOM = "zoom"
    NONE = "none"

    @property
    def later(self) -> bool:
        """Whether the link is made only after the meeting is confirmed."""
        return self in (LinkSource.CALENDAR, LinkSource.ZOOM)


class OutboxKind(StrEnum):
    """What an outbox row delivers (DESIGN §6, §7 ``outbox``): an email, a write of the
    teacher's calendar, a video room (Zoom)."""

    EMAIL = "email"
    CALENDAR = "calendar"
    VIDEO = "video"


class OutboxState(StrEnum):
    """An outbox row's state as stored: to deliver, delivered, given up (dead letter)."""

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class WaitlistState(StrEnum):
    """A family on a teacher's waiting list (DESIGN §3): waiting, offered a freed slot, or
    gone (it booked by another way, or staff removed it)."""

    WAITING = "waiting"
    OFFERED = "offered"
    LEFT = "left"


class MeetingMode(StrEnum):
    """How a student's guardians meet a teacher (DESIGN §8 ``meeting_mode``): one meeting
    for all of them, or one each."""

    JOINT = "joint"
    SEPARATE = "separate"


#: The values of ``meeting_mode`` (roster column and period key), in the order errors list them.
MEETING_MODES = tuple(m.value for m in MeetingMode)


class Actor(StrEnum):
    """Who caused a change in a meeting's history."""

    PARENT = "parent"
    TEACHER = "teacher"
    STAFF = "staff"
    SYSTEM = "system"


def as_utc(moment: datetime) -> datetime:
    """Return an aware datetime in UTC; refuse naive ones, which would be ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} where an aware one is needed")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open span of time ``[start, end)`` between two aware datetimes.

    Comparisons and durations are made in UTC: Python compares and subtracts two datetimes
    of the same ``tzinfo`` by wall clock, which is wrong across a change of the clocks
    (02:40+02:00 and 02:00+01:00 in Europe/Berlin are 20 minutes apart, not -40).
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Interval needs aware datetimes")
        if as_utc(self.end) < as_utc(self.start):
            raise ValueError(f"Interval ends before it starts: {self.start} > {self.end}")

    @property
    def duration(self) -> timedelta:
        return as_utc(self.end) - as_utc(self.start)

    def overlaps(self, other: Interval) -> bool:
        """True when the two spans share any instant (touching ends do not overlap)."""
        return as_utc(self.start) < as_utc(other.end) and as_utc(other.start) < as_utc(self.end)

    def contains(self, other: Interval) -> bool:
        return as_utc(self.start) <= as_utc(other.start) and as_utc(other.end) <= as_utc(self.end)

    def utc(self) -> Interval:
        return Interval(as_utc(self.start), as_utc(self.end))


@dataclass(frozen=True, slots=True)
class Busy:
    """A span in which a teacher cannot meet.  ``tentative`` is still busy (DESIGN, issue 2)."""

    start: datetime
    end: datetime
    tentative: bool = False

    @property
    def interval(self) -> Interval:
        return Interval(self.start, self.end)


@dataclass(frozen=True, slots=True)
class Window:
    """One evening (or morning) of a period.  The config gives the school's local times
    and stores them in UTC, so arithmetic on them is right across a change of the clocks."""

    start: datetime
    end: datetime


_KEY_CLEAN = re.compile(r"[^a-z0-9]+")


def teacher_key_for(email: str) -> str:
    """The URL-safe key of a teacher, derived from the local part of the email.

    ``Mary.O'Neil@school.org`` → ``mary-o-neil``.  The roster importer keeps keys unique and
    stores them, so a key never changes once given.
    """
    local = email.split("@", 1)[0].lower()
    local = local.split("+", 1)[0]
    key = _KEY_CLEAN.sub("-", local).strip("-")
    return key or "teacher"
