"""The words parents read: notification, invitation, confirmation and other emails (PURE).

Each function returns a :class:`Text` (subject, plain text, HTML).  Times are shown in the
school's zone with the zone named, so a parent abroad is never misled.  Only the parent's
own data appear in a message to that parent.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    plain: str
    html: str


@dataclass(frozen=True, slots=True)
class MeetingFacts:
    """What a message says about one meeting."""

    teacher_name: str
    students: tuple[str, ...]
    start: datetime
    end: datetime
    video_url: str = ""
    location: str = ""


def when(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{s:%A %d %B %Y, %H:%M}–{e:%H:%M} ({tz.key})"


def _where(m: MeetingFacts) -> str:
    if m.video_url:
        return f"Video call: {m.video_url}"
    return f"Place: {m.location}" if m.location else ""


def _html(paragraphs: Sequence[str]) -> str:
    body = "".join(
        "<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>\n" for p in paragraphs if p
    )
    return f'<!doctype html>\n<html><body style="font-family:sans-serif">\n{body}</body></html>\n'


def _text(subject: str, paragraphs: Sequence[str]) -> Text:
    plain = "\n\n".join(p for p in paragraphs if p) + "\n"
    return Text(subject, plain, _html(paragraphs))


def _subject(prefix: str, period_title: str, m: MeetingFacts, tz: ZoneInfo) -> str:
    return f"{prefix}: {period_title} with {m.teacher_name}, {when(m.start, m.end, tz)}"


def _about(m: MeetingFacts) -> str:
    return f"{m.teacher_name} about {' and '.join(m.students)}" if m.students else m.teacher_name


def notification(
    *,
    school: str,
    period_title: str,
    guardian_name: str,
    dates: Sequence[str],
    meetings: Sequence[MeetingFacts],
    tz: ZoneInfo,
    contact: str,
    hold_until: datetime | None,
    page_url: str = "",
) -> Text:
    """The one email per family: purpose, dates, how to book, whom to contact."""
    lines = "\n".join(f"- {when(m.start, m.end, tz)}: {_about(m)}" for m in meetings)
    deadline = (
        f"Please answer by {hold_until.astimezone(tz):%A %d %B, %H:%M}; after that the "
        "times are offered to other families."
        if hold_until
        else ""
    )
    return _text(
        f"{period_title} at {school}",
        [
            f"Dear {guardian_name},",
            f"{school} invites you to its {period_title.lower()} on {', '.join(dates)}: a "
            "short meeting with each of your child's teachers about progress and next steps.",
            f"We have reserved these times for you:\n{lines}",
            "You will receive one calendar invitation per meeting. To book, press Accept in "
            "your mail or calendar app. To ask for another time, use Propose new time; to "
            "say no, press Decline.",
            deadline,
            f"Free times are listed at {page_url}" if page_url else "",
            f"Questions or changes: write to {contact}.",
            school,
        ],
    )


def invitation(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    """The body of one calendar invitation (the REQUEST carries the details for the client)."""
    return _text(
        _subject("Invitation", period_title, meeting, tz),
        [
            f"A meeting with {_about(meeting)} is reserved for you:",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            "Press Accept to book it, Decline to free it, or Propose new time.",
            f"Questions or changes: {contact}",
            school,
        ],
    )


def confirmation(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    moved_from: tuple[datetime, datetime] | None = None,
) -> Text:
    """The meeting is booked; ``moved_from``: it was booked at that time (start, end)
    before (staff moved it, or the family's new time was granted), said in words."""
    lead = f"Your meeting with {_about(meeting)} is confirmed."
    if moved_from is not None:
        lead = (
            f"Your meeting with {_about(meeting)} has been moved from "
            f"{when(*moved_from, tz)} and is confirmed at its new time:"
        )
    return _text(
        _subject("Confirmed", period_title, meeting, tz),
        [
            lead,
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            f"To change or cancel it, write to {contact} or decline the invitation.",
            school,
        ],
    )


def cancellation(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    reason: str = "",
) -> Text:
    return _text(
        _subject("Cancelled", period_title, meeting, tz),
        [
            f"The meeting with {_about(meeting)} on {when(meeting.start, meeting.end, tz)} "
            "is cancelled.",
            f"Reason: {reason}" if reason else "",
            f"Questions: {contact}",
            school,
        ],
    )


def declined(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    page_url: str = "",
    declined_by: str = "",
) -> Text:
    """Acknowledges a decline and says how else to book.

    ``declined_by`` names the other guardian who declined, for a guardian who did not.
    """
    time = when(meeting.start, meeting.end, tz)
    opening = (
        f"{declined_by} has declined the time {time} with {_about(meeting)}: it is released."
        if declined_by
        else f"Thank you for letting us know: the time {time} with {_about(meeting)} is released."
    )
    return _text(
        f"Declined: {period_title} with {meeting.teacher_name}",
        [
            opening,
            f"Free times are listed at {page_url}." if page_url else "",
            f"To book another time, write to {contact}.",
            school,
        ],
    )


def counter_declined(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    why: str,
    alternatives: Sequence[tuple[datetime, datetime]],
) -> Text:
    """The answer to a "Propose new time" we cannot grant, with free alternatives."""
    offer = (
        "These times are free:\n" + "\n".join(f"- {when(s, e, tz)}" for s, e in alternatives)
        if alternatives
        else "No other time with this teacher is free at the moment."
    )
    return _text(
        f"New time not possible: {period_title} with {meeting.teacher_name}",
        [
            f"Thank you for proposing another time for your meeting with {_about(meeting)}. "
            f"We cannot move it: {why}.",
            f"Your meeting stays at {when(meeting.start, meeting.end, tz)}.",
            offer,
            f"To take one of them, propose it again from your calendar, or write to {contact}.",
            school,
        ],
    )


def _times(alternatives: Sequence[tuple[datetime, datetime]], tz: ZoneInfo) -> str:
    if not alternatives:
        return "No other time with this teacher is free at the moment."
    return "These times are free:\n" + "\n".join(f"- {when(s, e, tz)}" for s, e in alternatives)


def how_to_book(*, booking_address: str, page_url: str, contact: str) -> str:
    """The sentence that tells a family how else to book (DESIGN §3)."""
    ways = []
    if booking_address:
        ways.append(f"send a calendar invitation for a free time to {booking_address}")
    if page_url:
        ways.append(f"see the free times at {page_url}")
    ways.append(f"write to {contact}")
    return "To book another time, " + ", or ".join(ways) + "."


def reproposal(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    reason: str = "",
) -> Text:
    """A new proposal after the family declined a time, or (``reason``: why, in a few
    words) after the teacher took back a booked one (DESIGN §3, re-proposals)."""
    lead = (
        f"{reason[:1].upper()}{reason[1:]}. We have reserved another time"
        if reason
        else "As the time we proposed did not suit you, we have reserved another time"
    )
    return _text(
        _subject("New time proposed", period_title, meeting, tz),
        [
            f"{lead} for your meeting with {_about(meeting)}:",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            "Press Accept to book it, Decline to free it, or Propose new time.",
            f"Questions or changes: {contact}",
            school,
        ],
    )


def waitlist_offer(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    """A freed time offered to the first family on the teacher's waiting list."""
    return _text(
        _subject("A time has become free", period_title, meeting, tz),
        [
            f"You are on the waiting list for a meeting with {_about(meeting)}. A time has "
            "become free and is reserved for you:",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            "Press Accept to book it, Decline to free it, or Propose new time.",
            f"Questions or changes: {contact}",
            school,
        ],
    )


def moved(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    """The teacher moved the meeting in their calendar: the new time, to be answered."""
    return _text(
        _subject("Moved", period_title, meeting, tz),
        [
            f"{meeting.teacher_name} has had to move your meeting about "
            f"{' and '.join(meeting.students) or 'your child'}. The new time is:",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            "Press Accept if it suits you, or Decline or Propose new time if it does not.",
            f"Questions: {contact}",
            school,
        ],
    )


def booking_answer(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    accepted: bool,
    reason: str = "",
    alternatives: Sequence[tuple[datetime, datetime]] = (),
    how: str = "",
    additional: str = "",
    kept: tuple[datetime, datetime] | None = None,
    withdrawn: bool = False,
) -> Text:
    """Our answer (the REPLY's text) to a parent's invitation of a teacher's booking address.

    ``kept``: the time of the booking that stays when an update to another time is
    declined.  ``withdrawn``: the school cancels a booking it had accepted.
    """
    time = when(meeting.start, meeting.end, tz)
    if accepted:
        subject = f"Accepted: {period_title} with {meeting.teacher_name}, {time}"
        lines = [f"{meeting.teacher_name} accepts your invitation for {time}.", _where(meeting)]
    elif withdrawn:
        subject = f"Cancelled: {period_title} with {meeting.teacher_name}, {time}"
        lines = [
            f"We are sorry: your meeting with {meeting.teacher_name} on {time} is cancelled"
            + (f": {reason}." if reason else "."),
            _times(alternatives, tz),
            how,
        ]
    else:
        subject = f"Declined: {period_title} with {meeting.teacher_name}, {time}"
        stays = (
            f"Your meeting stays at {when(kept[0], kept[1], tz)}; to keep it, set the "
            "time in your calendar back, or choose one of the times below."
            if kept
            else ""
        )
        lines = [
            f"{meeting.teacher_name} cannot accept your invitation for {time}: {reason}.",
            stays,
            _times(alternatives, tz),
            how,
        ]
    return _text(subject, [*lines, additional, f"Questions: {contact}", school])


def booking_details(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    """The follow-up to an accepted booking: where the meeting happens."""
    return _text(
        f"Your meeting with {meeting.teacher_name}: {when(meeting.start, meeting.end, tz)}",
        [
            f"Your {period_title.lower()} meeting with {_about(meeting)} is booked:",
            when(meeting.start, meeting.end, tz),
            _where(meeting) or "The school will tell you where the meeting takes place.",
            "Please add the video link or place to your calendar event.",
            f"To change or cancel it, update or cancel your invitation, or write to {contact}.",
            school,
        ],
    )


def moved_booked(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    alternatives: Sequence[tuple[datetime, datetime]],
) -> Text:
    """The teacher moved a meeting the parent organized: the parent is asked to move it."""
    new = when(*alternatives[0], tz) if alternatives else ""
    return _text(
        f"Please move your meeting with {meeting.teacher_name}",
        [
            f"{meeting.teacher_name} has had to move your meeting of "
            f"{when(meeting.start, meeting.end, tz)}" + (f" to {new}." if new else "."),
            "Please change the time in your calendar invitation, which sends the teacher "
            "the update, or cancel it if the new time does not suit you.",
            f"Questions: {contact}",
            school,
        ],
    )


def waitlisted(*, school: str, period_title: str, meeting: MeetingFacts, contact: str) -> Text:
    """The family is on the teacher's waiting list."""
    return _text(
        f"Waiting list: {period_title} with {meeting.teacher_name}",
        [
            f"{meeting.teacher_name} has no free time left that suits your family. We have "
            "put you on the waiting list: when a time becomes free, we reserve it for you "
            "and send you an invitation.",
            f"Questions: {contact}",
            school,
        ],
    )


# --- to the school's staff --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuarantineLine:
    """A quarantined inbound message, as the staff digest lists it."""

    id: int
    received_at: datetime
    sender: str
    reason: str
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetterLine:
    """A dead-lettered outbox row, as the staff digest lists it."""

    id: int
    kind: str
    meeting: int | None
    last_error: str


@dataclass(frozen=True, slots=True)
class ConflictLine:
    """A confirmed meeting a busy event of the teacher now overlaps, as the digest lists it
    (the teacher, the meeting's time and the busy event's; no family's name)."""

    meeting: int
    teacher: str
    start: datetime
    busy_start: datetime
    busy_end: datetime


@dataclass(frozen=True, slots=True)
class RetiredLine:
    """A confirmed meeting kept after its family or teacher left the roster (``who``:
    ``family`` or ``teacher``), as the digest lists it (no family's name)."""

    meeting: int
    teacher: str
    start: datetime
    who: str


def staff_digest(
    *,
    school: str,
    day: str,
    quarantined: Sequence[QuarantineLine],
    dead: Sequence[DeadLetterLine],
    tz: ZoneInfo,
    conflicts: Sequence[ConflictLine] = (),
    retired: Sequence[RetiredLine] = (),
) -> Text:
    """The daily digest to ``[school] contact``: messages from parents that could not be
    used (since the last digest) and deliveries given up on (all still dead).  Each entry
    names the command that shows or fixes it.  Sender addresses are shown: staff need them
    to reach the parent, and they see them in `ptm-sync quarantine` anyway; the messages'
    subjects and contents are not (they can name a child)."""
    count = len(quarantined) + len(dead) + len(conflicts) + len(retired)
    subject = f"{school}: ptm-sync needs attention ({count} item{'s' if count != 1 else ''}, {day})"
    paragraphs = [f"ptm-sync at {school}: what needs a person's attention, {day}."]
    if quarantined:
        lines = [
            f"#{q.id} {q.received_at.astimezone(tz):%Y-%m-%d %H:%M} "
            f"from {q.sender or '(no sender)'}: {q.reason}"
            + (f" ({q.explanation})" if q.explanation else "")
            for q in quarantined
        ]
        paragraphs += [
            f"{len(quarantined)} message{'s' if len(quarantined) != 1 else ''} from parents "
            "changed nothing and wait in quarantine:",
            "\n".join(lines),
            "See one with `ptm-sync quarantine show ID`; once its cause is fixed, "
            "`ptm-sync quarantine release ID` processes it again.",
        ]
    if dead:
        lines = [
            f"#{d.id} {d.kind}"
            + (f" of meeting {d.meeting}" if d.meeting is not None else "")
            + (f": {d.last_error}" if d.last_error else "")
            for d in dead
        ]
        paragraphs += [
            f"{len(dead)} deliver{'ies' if len(dead) != 1 else 'y'} failed for good "
            "(dead-lettered):",
            "\n".join(lines),
            "`ptm-sync outbox` lists them; after fixing the cause, `ptm-sync outbox retry ID` "
            "tries one again.",
        ]
    if conflicts:
        lines = [
            f"meeting {c.meeting} with {c.teacher} at {c.start.astimezone(tz):%Y-%m-%d %H:%M}: "
            f"the teacher is busy {c.busy_start.astimezone(tz):%H:%M}–"
            f"{c.busy_end.astimezone(tz):%H:%M}"
            for c in conflicts
        ]
        paragraphs += [
            f"{len(conflicts)} confirmed meeting{'s' if len(conflicts) != 1 else ''} now "
            f"overlap{'' if len(conflicts) != 1 else 's'} a busy event in the teacher's "
            "calendar (nothing was moved):",
            "\n".join(lines),
            "`ptm-sync meetings --conflicts` lists them; reschedule or cancel with the "
            "family, or ask the teacher to move their event.",
        ]
    if retired:
        lines = [
            f"meeting {r.meeting} with {r.teacher} at {r.start.astimezone(tz):%Y-%m-%d %H:%M}: "
            f"the {r.who} left the roster"
            for r in retired
        ]
        paragraphs += [
            f"{len(retired)} confirmed meeting{'s' if len(retired) != 1 else ''} of families "
            "or teachers who left the roster (a roster import with --replace) "
            f"{'are' if len(retired) != 1 else 'is'} kept:",
            "\n".join(lines),
            "`ptm-sync meetings --retired` lists them; cancel what should not happen with "
            "`ptm-sync cancel ID`.",
        ]
    paragraphs.append(
        "This digest comes once a day when there is something to report "
        '([notify] staff_digest = "never" turns it off).'
    )
    return _text(subject, paragraphs)
