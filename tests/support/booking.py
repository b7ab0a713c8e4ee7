"""A seeded school in one database, for in-process tests of the booking engine.

No subprocesses and no real clock: :class:`SeededSchool` holds a config parsed from text
(:func:`config_text`), the roster written with :func:`ptm_sync.app.roster_import.apply_roster`,
and a fixed ``now``.  It proposes meetings through the booking core's applier, reads
back what the engine wrote (meetings, history, outbox rows and the emails inside them), and
feeds replies shaped like real clients' (:mod:`ptm_sync.demo.parents`) through
:func:`ptm_sync.app.channels.replies.process`.

    school = SeededSchool.create(db)                   # roster + periods, nothing proposed
    meeting = school.propose(ADA, PAT, slot=0)         # first grid slot of "spring"
    raw = school.reply(meeting, "ACCEPTED", client="outlook")
    assert school.deliver(raw).outcome == "applied"

``SeededSchool.create(db, families=FAMILIES + BROWNS)`` adds a student with two guardians.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy import select

from ptm_sync.adapters.store import Calendar as CalendarRow
from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Inbound,
    Meeting,
    MeetingHistory,
    Outbox,
    Student,
    Teacher,
)
from ptm_sync.adapters.video.providers import VideoProvider, provider_for
from ptm_sync.app import outbox
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.replies import Outcome, process
from ptm_sync.app.periods import ensure_periods
from ptm_sync.app.read.availability import period_slots
from ptm_sync.app.roster_import import apply_roster
from ptm_sync.config.settings import Config, PeriodConfig, parse
from ptm_sync.core.booking.events import Offer
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.errors import BookingRefused, SlotTaken
from ptm_sync.core.model import Interval
from ptm_sync.core.roster.parse import (
    Roster,
    RosterGuardian,
    RosterLink,
    RosterStudent,
    RosterTeacher,
)
from ptm_sync.core.slots import grid
from ptm_sync.demo import parents

TZ = ZoneInfo("America/New_York")
#: A Monday, two days after booking opened; every window below lies weeks ahead.
NOW = datetime(2027, 3, 22, 14, 0, tzinfo=UTC)
ORGANIZER = "conferences@lincoln.example.org"
CONTACT = "office@lincoln.example.org"
VIDEO_BASE = "https://meet.lincoln.example.org"
AUTHSERV = "mx.lincoln.example.org"

ADA, ALAN = "ada@lincoln.example.org", "alan@lincoln.example.org"
PAT, SAM = "pat@example.net", "sam@example.com"
CHRIS, ALEX = "chris.brown@example.org", "alex.brown@example.org"
TEACHERS = [(ADA, "Ada Lovelace", "101"), (ALAN, "Alan Turing", "102")]
Family = tuple[str, str, str, str, list[str]]
# student id, name, guardian email, guardian name, teachers
FAMILIES: list[Family] = [
    ("S1", "Mia Johnson", PAT, "Pat Johnson", [ADA, ALAN]),
    ("S2", "Leo Johnson", PAT, "Pat Johnson", [ALAN]),
    ("S3", "Ava Smith", SAM, "Sam Smith", [ADA]),
]
#: A student with two guardians, Chris first in the roster: not in the default school.
BROWNS: list[Family] = [
    ("S4", "Zoe Brown", CHRIS, "Chris Brown", [ADA]),
    ("S4", "Zoe Brown", ALEX, "Alex Brown", [ADA]),
]

#: "spring": video meetings on a Monday and a Friday, no deadline.  "open-day": in person,
#: booking closes a day after NOW, so its holds are capped (hold_hours is 48).
PERIODS = """
[[periods]]
id = "spring"
title = "Spring conferences"
slot_minutes = 15
gap_minutes = 5
hold_hours = 48
format = "video"
windows = ["2027-04-12T15:00/17:00", "2027-04-16T15:00/16:00"]

[[periods]]
id = "open-day"
title = "Open day"
slot_minutes = 15
hold_hours = 48
format = "in_person"
location = "Room {room}, main building"
booking_closes = 2027-03-23T10:00:00
windows = ["2027-04-13T09:00/10:00"]
"""


def config_text(
    *,
    mail: str = "",
    caldav_url: str = "https://dav.lincoln.example.org/",
    caldav_user: str = "ptm-sync",
    caldav_password: str = "",
    templates: str = "",
    periods: str = PERIODS,
    video: str = 'provider = "jitsi"',
    accounts: str = "",
) -> str:
    """The TOML of the test school; ``mail`` adds keys to ``[mail]`` (one per line),
    ``video`` is the ``[video]`` table's keys besides ``base_url``, ``accounts`` more
    ``[[accounts]]`` tables."""
    return f"""
[school]
name = "Lincoln High School"
timezone = "{TZ.key}"
contact = "{CONTACT}"

[mail]
organizer = "{ORGANIZER}"
{mail}

[web]
public_url = "https://conferences.lincoln.example.org"

[video]
{video}
base_url = "{VIDEO_BASE}"

[templates]
{templates}

[[accounts]]
id = "dav"
type = "caldav"
url = "{caldav_url}"
username = "{caldav_user}"
password = "{caldav_password}"
{accounts}
{periods}
"""


def roster(
    calendars: Mapping[str, str] | None = None,
    families: Sequence[Family] = FAMILIES,
    modes: Mapping[str, str] | None = None,
) -> Roster:
    """TEACHERS and ``families`` as a validated roster (calendar URLs per teacher email);
    ``modes``: a student's ``meeting_mode`` by student id."""
    calendars = calendars or {}
    modes = modes or {}
    return Roster(
        teachers=tuple(
            RosterTeacher(
                email=e,
                name=n,
                account="dav",
                calendar=calendars.get(e, f"/calendars/{e.split('@')[0]}/"),
                room=r,
                booking_address=None,
            )
            for e, n, r in TEACHERS
        ),
        students=tuple(
            {
                sid: RosterStudent(sid, name, modes.get(sid, "")) for sid, name, *_ in families
            }.values()
        ),
        guardians=tuple({g: RosterGuardian(g, gname) for _, _, g, gname, _ in families}.values()),
        links=tuple(RosterLink(g, sid, t) for sid, _, g, _, teachers in families for t in teachers),
    )


def parse_email(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def calendar_of(raw: bytes) -> Calendar | None:
    """The text/calendar part of an email, parsed; None for a plain email."""
    for part in parse_email(raw).walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return Calendar.from_ical(payload)
    return None


def event_of(raw: bytes) -> Event:
    cal = calendar_of(raw)
    assert cal is not None, "not a calendar email"
    return cal.events[0]


def with_header(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with one more header line on top (as a receiving server adds them)."""
    return f"{name}: {value}\r\n".encode() + raw


@dataclass(frozen=True, slots=True)
class SentEmail:
    """An email the engine put in the outbox."""

    row_id: int
    key: str
    to: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return parse_email(self.raw)

    @property
    def method(self) -> str | None:
        cal = calendar_of(self.raw)
        return str(cal["METHOD"]) if cal is not None else None

    @property
    def event(self) -> Event:
        return event_of(self.raw)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])


@dataclass
class SeededSchool:
    """The test school in ``db``: roster and periods stored, a fixed clock."""

    db: Database
    config: Config
    now: datetime = NOW
    families: Sequence[Family] = field(default_factory=lambda: FAMILIES)
    video: VideoProvider = field(init=False)

    def __post_init__(self) -> None:
        self.video = provider_for(self.config.video)

    @classmethod
    def create(
        cls,
        db: Database,
        *,
        calendars: Mapping[str, str] | None = None,
        now: datetime = NOW,
        families: Sequence[Family] = FAMILIES,
        modes: Mapping[str, str] | None = None,
        **config: Any,
    ) -> SeededSchool:
        """Parse the config (keywords go to :func:`config_text`) and store the roster."""
        school = cls(db, parse(config_text(**config)), now, families)
        apply_roster(db, roster(calendars, families, modes))
        with db.write() as session:
            ensure_periods(session, school.config)
            # Every teacher's calendar has been read (empty): they are free all evening.
            for teacher in session.scalars(select(Teacher)):
                session.add(
                    CalendarRow(
                        teacher_id=teacher.id,
                        account=teacher.account,
                        url=teacher.calendar,
                        synced_at=now,
                    )
                )
        return school

    # --- the engine -------------------------------------------------------------------

    def applier(self, now: datetime | None = None) -> Applier:
        """The booking core's writer at ``now`` (default: the school's fixed now)."""
        return Applier(self.config, now=now or self.now, video=self.video)

    def period(self, period_id: str = "spring") -> PeriodConfig:
        return self.config.period(period_id)

    def slot(self, index: int, period_id: str = "spring") -> Interval:
        """The ``index``-th slot of the period's grid."""
        period = self.period(period_id)
        return grid(period.windows, period.slot_minutes, period.buffer_minutes)[index]

    def propose(
        self,
        teacher: str = ADA,
        guardian: str = PAT,
        *,
        slot: int | Interval = 0,
        period_id: str = "spring",
        students: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> Meeting:
        """One proposal in its own transaction; the meeting comes back detached.

        ``guardian`` is the primary; every other guardian of the student(s) who sees
        ``teacher`` is invited too, as `invite` does.
        """
        period = self.period(period_id)
        interval = slot if isinstance(slot, Interval) else self.slot(slot, period_id)
        with self.db.write() as session:
            meeting = self.propose_in(session, teacher, guardian, interval, period, students, now)
        return meeting

    def propose_in(
        self,
        session: Any,
        teacher: str,
        guardian: str,
        interval: Interval,
        period: PeriodConfig,
        students: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> Meeting:
        t = session.scalars(select(Teacher).where(Teacher.email == teacher)).one()
        if students is None:
            mine = [sid for sid, _, g, _, ts in self.families if g == guardian and teacher in ts]
            students = mine[:1]
        invited = [guardian] + [
            g
            for sid, _, g, _, ts in self.families
            if sid in students and teacher in ts and g != guardian
        ]
        people = {
            g.email: g for g in session.scalars(select(Guardian).where(Guardian.email.in_(invited)))
        }
        found = list(session.scalars(select(Student).where(Student.student_id.in_(students))))
        applier = self.applier(now)
        draft = load.draft(
            self.config,
            period,
            t,
            [people[g] for g in invited],
            found,
            interval,
            fresh=applier.fresh(session, period.id, t.account),
        )
        decision = applier.handle(session, draft, Offer(slot=interval))
        if decision.after is None or decision.after.id is None:
            if decision.reason.startswith("busy"):
                raise SlotTaken(f"not proposed: {decision.reason}")
            raise BookingRefused(f"not proposed: {decision.reason}")
        meeting = session.get(Meeting, decision.after.id)
        assert meeting is not None
        return meeting

    # --- reading back -----------------------------------------------------------------

    def meeting(self, meeting_id: int) -> Meeting:
        with self.db.read() as session:
            found = session.get(Meeting, meeting_id)
            assert found is not None
            return found

    def history(self, meeting_id: int) -> list[MeetingHistory]:
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(MeetingHistory)
                    .where(MeetingHistory.meeting_id == meeting_id)
                    .order_by(MeetingHistory.id)
                )
            )

    def outbox_rows(self, meeting_id: int | None = None, kind: str | None = None) -> list[Outbox]:
        with self.db.read() as session:
            query = select(Outbox).order_by(Outbox.id)
            if meeting_id is not None:
                query = query.where(Outbox.meeting_id == meeting_id)
            if kind is not None:
                query = query.where(Outbox.kind == kind)
            return list(session.scalars(query))

    def emails(self, meeting_id: int | None = None) -> list[SentEmail]:
        """The emails in the outbox (of one meeting), oldest first."""
        found = []
        for row in self.outbox_rows(meeting_id, outbox.EMAIL):
            data = json.loads(row.payload)
            found.append(SentEmail(row.id, row.key, data["to"], email_of(data)))
        return found

    def latest_request(self, meeting_id: int, to: str | None = None) -> bytes:
        """The newest METHOD:REQUEST email of the meeting, as the parent (or guardian
        ``to``) received it."""
        requests = [
            e
            for e in self.emails(meeting_id)
            if e.method == "REQUEST" and (to is None or e.to == [to])
        ]
        assert requests, f"no REQUEST sent for meeting {meeting_id}"
        return requests[-1].raw

    def inbound(self, inbound_id: int) -> Inbound:
        with self.db.read() as session:
            row = session.get(Inbound, inbound_id)
            assert row is not None
            return row

    def free_starts(self, teacher: str, period_id: str = "spring") -> list[datetime]:
        """Starts (UTC) of the teacher's bookable slots: held and booked ones excluded."""
        with self.db.read() as session:
            rows = period_slots(
                session, self.config, self.period(period_id), now=self.now, teacher_email=teacher
            )
        return [r.start.astimezone(UTC) for r in rows]

    # --- replies ------------------------------------------------------------------------

    def reply(
        self,
        meeting: Meeting | int,
        partstat: str,
        *,
        client: str = "thunderbird",
        at: timedelta = timedelta(minutes=10),
        comment: str = "",
        invitation: bytes | None = None,
        by: str | None = None,
    ) -> bytes:
        """The parent's answer to the latest REQUEST (the one guardian ``by`` received),
        sent ``at`` after ``now``."""
        meeting_id = meeting if isinstance(meeting, int) else meeting.id
        raw = invitation or self.latest_request(meeting_id, by)
        return parents.reply(client, raw, partstat, tz=TZ, now=self.now + at, comment=comment)

    def counter(
        self,
        meeting: Meeting | int,
        *,
        slot: int | Interval,
        at: timedelta = timedelta(minutes=10),
        by: str | None = None,
        comment: str = "",
        client: str = "outlook",
    ) -> bytes:
        """``client``'s "Propose new time" for the latest REQUEST, asking for ``slot``:
        Outlook's COUNTER, or Gmail's REPLY carrying the new time."""
        meeting_id = meeting if isinstance(meeting, int) else meeting.id
        when = slot if isinstance(slot, Interval) else self.slot(slot)
        propose = parents.gmail_propose_new_time if client == "gmail" else parents.propose_new_time
        return propose(
            self.latest_request(meeting_id, by),
            when.start,
            when.end,
            tz=TZ,
            now=self.now + at,
            comment=comment,
        )

    def deliver(self, raw: bytes, *, at: timedelta = timedelta(minutes=15)) -> Outcome:
        """The inbound pipeline, as `mail deliver` runs it, ``at`` after ``now``."""
        return process(self.db, self.config, raw, now=self.now + at, video=self.video)


def refresh_message(
    meeting: Meeting,
    sender: str,
    *,
    now: datetime,
    to: str = ORGANIZER,
    attendee: str | None = None,
) -> bytes:
    """A METHOD:REFRESH (RFC 5546 §3.2.6) from ``sender`` (as ``attendee``, default the
    sender) asking for the meeting again."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    cal = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Example//Client//EN",
            "VERSION:2.0",
            "METHOD:REFRESH",
            "BEGIN:VEVENT",
            f"UID:{meeting.uid}",
            f"DTSTAMP:{stamp}",
            f"ORGANIZER:mailto:{to}",
            f"ATTENDEE:mailto:{attendee or sender}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Refresh\r\n"
        f"Message-ID: <refresh-{stamp}-{meeting.id}@example.net>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/calendar; charset=utf-8; method=REFRESH\r\n\r\n"
    )
    return (head + cal).encode()


def handmade_reply(
    uid: str,
    attendee: str,
    partstat: str,
    *,
    now: datetime,
    sender: str | None = None,
    sequence: int = 0,
    to: str = ORGANIZER,
) -> bytes:
    """A bare METHOD:REPLY in one 7-bit text/calendar part, for UIDs no invitation carried."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    cal = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Example//Client//EN",
            "VERSION:2.0",
            "METHOD:REPLY",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{stamp}",
            f"SEQUENCE:{sequence}",
            f"ORGANIZER:mailto:{to}",
            f"ATTENDEE;PARTSTAT={partstat}:mailto:{attendee}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    head = (
        f"From: {sender or attendee}\r\nTo: {to}\r\nSubject: {partstat.title()}\r\n"
        f"Message-ID: <reply-{stamp}-{abs(hash(uid))}@example.net>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
    )
    return (head + cal).encode()


T = TypeVar("T")


def race(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``jobs`` in threads that start together; their results in order.

    An exception in any job is raised here, in the test's thread.
    """
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    done = [False] * len(jobs)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            results[i] = exc
        done[i] = True

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(done), "a job did not finish within a minute"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results
