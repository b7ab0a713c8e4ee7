"""A decision's messages as letters: what each recipient is sent, as a small stored value.

PURE.  A :class:`Letter` holds everything one email needs — who sends it to whom, the
meeting as that recipient sees it, which text and which iTIP method — and nothing that is
costly to make.  The applier stores letters in the outbox in the decision's transaction;
:func:`ptm_sync.core.booking.notices.render` turns one into the email when it is delivered, the
same bytes every time (fixed Message-ID and Date), so a redelivery is recognisably the
same message (DESIGN §6).  Building the MIME message and the calendar outside the booking
transaction keeps a decision short: ``bench/inbound.py`` shows the difference (``invite``,
which makes many emails at once and keeps nobody waiting, stores them rendered).

Calendar messages follow DESIGN §4: one email per guardian, each naming that guardian as
ATTENDEE with their own answer; for a meeting a parent organizes through a teacher's
booking address we are the ATTENDEE and answer with a REPLY (RFC 5546 §3.2.3) from that
address.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from icalendar.enums import PARTSTAT, STATUS

from ptm_sync.core.booking import messages
from ptm_sync.core.booking.disruption_text import CancelledMeeting
from ptm_sync.core.booking.values import Audience, Decision, MeetingView, Notice, Party
from ptm_sync.core.model import MeetingState

#: Templates without a calendar part.
PLAIN_TEMPLATES = frozenset(
    {
        "booking_details",
        "moved_booked",
        "waitlisted",
        "reminder",
        "running_late",
        "feedback_request",
        "day_cancelled",
    }
)
_STATUS_OF_TEMPLATE = {
    "invitation": STATUS.TENTATIVE,
    "reproposal": STATUS.TENTATIVE,
    "waitlist_offer": STATUS.TENTATIVE,
    "confirmation": STATUS.CONFIRMED,
    "moved": STATUS.CONFIRMED,
    "late_moved": STATUS.CONFIRMED,
}
#: The local part's tag of the address a feedback reply goes to (plus addressing).
FEEDBACK_TAG = "feedback-"


def feedback_address(organizer: str, token: str) -> str:
    """Where a reply to a feedback request goes with plus addressing:
    ``local+feedback-<token>@domain`` of the organizer address (the plus-address token
    matches the reply to its meeting).  Without plus addressing the reply goes to the
    organizer address itself and is matched by In-Reply-To or References."""
    local, _, domain = organizer.partition("@")
    return f"{local.split('+', 1)[0]}+{FEEDBACK_TAG}{token}@{domain}"


def feedback_token_of(address: str) -> str | None:
    """The feedback token a plus-address carries (:func:`feedback_address`), or None."""
    local = address.rpartition("@")[0]
    _, plus, tag = local.partition("+")
    if not plus or not tag.startswith(FEEDBACK_TAG):
        return None
    token = tag[len(FEEDBACK_TAG) :]
    return token if token.replace("-", "").replace("_", "").isalnum() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Letterhead:
    """What every message needs from the config: who we are and how to reach us.

    ``organizer``: ``[mail] organizer`` (the envelope sender and the Message-ID domain);
    ``public_url``: ``[web] public_url``; ``additional_response``: ``[booking_address]
    add_additional_response``, appended to our answers to booking requests;
    ``plus_addressing``: ``[mail] plus_addressing`` (whether our mail server delivers
    ``local+tag@domain`` to us: a feedback request's Reply-To is such an address only then).
    """

    school: str
    contact: str
    tz: ZoneInfo
    organizer: str
    public_url: str = ""
    period_titles: Mapping[str, str]
    additional_response: str = ""
    #: Each period's ``feedback_url`` (absent or "": feedback by reply email).
    feedback_links: Mapping[str, str] = dataclasses.field(default_factory=dict)
    plus_addressing: bool = False

    @property
    def domain(self) -> str:
        return self.organizer.rsplit("@", 1)[1]

    def page_url(self, period: str) -> str:
        base = self.public_url.rstrip("/")
        return f"{base}/periods/{period}" if base else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Letter:
    """One email, as a value: every field :func:`~ptm_sync.core.booking.notices.render` needs.

    ``template`` names a text of :mod:`ptm_sync.core.booking.messages`; ``method`` the iTIP method
    of the calendar part (None: a plain email); ``status`` the event's STATUS (REQUEST and
    CANCEL).  ``attendee`` / ``partstat``: the ATTENDEE of the calendar and their answer
    (for a REPLY, the teacher's booking address and our answer).  Times are aware; ``tz``
    is the school's zone (an IANA key).
    """

    template: str
    method: str | None
    message_id: str
    date: datetime
    envelope_from: str
    sender: str
    sender_name: str
    to: str
    to_name: str
    reply_to: str = ""
    school: str
    contact: str
    tz: str
    period_title: str
    uid: str
    sequence: int
    start: datetime
    end: datetime
    status: str = ""
    organizer: str = ""
    organizer_name: str = ""
    attendee: str = ""
    attendee_name: str = ""
    partstat: str = ""
    summary: str = ""
    teacher: str = ""
    students: tuple[str, ...] = ()
    video_url: str = ""
    location: str = ""
    reason: str = ""
    alternatives: tuple[tuple[datetime, datetime], ...] = ()
    declined_by: str = ""
    next_step: str = ""
    additional: str = ""
    kept: tuple[datetime, datetime] | None = None  # the booking that stays (refused update)
    #: A confirmed meeting confirmed again at another time: when it was (start, end).
    moved_from: tuple[datetime, datetime] | None = None
    #: REQUEST-STATUS of a refusing REPLY / DECLINECOUNTER (RFC 5546 §3.6); "": the default.
    request_status: str = ""
    #: A feedback request's survey link ("" : the family is asked to reply by email).
    link: str = ""
    #: A teacher's cancelled day (``day_cancelled``): the recipient's meetings that day and
    #: what replaces each (DESIGN §3 "Bulk disruption").
    cancelled: tuple[CancelledMeeting, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO 8601 with offset)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif f.name == "alternatives":
                value = [[s.isoformat(), e.isoformat()] for s, e in value]
            elif f.name in ("kept", "moved_from") and value is not None:
                value = [value[0].isoformat(), value[1].isoformat()]
            elif f.name == "cancelled":
                value = [c.as_json() for c in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Letter:
        """The letter :meth:`as_json` wrote.

        Raises:
            KeyError, ValueError: ``data`` is not such a letter.
        """
        values = dict(data)
        for name in ("date", "start", "end"):
            values[name] = datetime.fromisoformat(values[name])
        values["students"] = tuple(values.get("students", ()))
        for name in ("kept", "moved_from"):
            span = values.get(name)
            values[name] = (
                (datetime.fromisoformat(span[0]), datetime.fromisoformat(span[1])) if span else None
            )
        values["alternatives"] = tuple(
            (datetime.fromisoformat(s), datetime.fromisoformat(e))
            for s, e in values.get("alternatives", ())
        )
        values["cancelled"] = tuple(
            CancelledMeeting.from_json(c) for c in values.get("cancelled", ())
        )
        return cls(**values)


def letters(decision: Decision, head: Letterhead, now: datetime) -> list[Letter]:
    """Every letter of ``decision``'s notices (not of its follow-ups in ``then``)."""
    meeting = decision.after or decision.before
    if meeting is None:
        return []
    out: list[Letter] = []
    for notice in decision.notices:
        for party in _recipients(decision, notice, meeting):
            out.append(_letter(decision, notice, meeting, party, head, now))
    if decision.waitlist is not None and decision.waitlist.notify:
        waitlisted = Notice(template="waitlisted", method=None)
        for party in meeting.parties:
            out.append(_letter(decision, waitlisted, meeting, party, head, now))
    return out


def facts(meeting: MeetingView) -> messages.MeetingFacts:
    """What a message says about ``meeting``."""
    return messages.MeetingFacts(
        teacher_name=meeting.teacher.name,
        students=tuple(s.first_name for s in meeting.students),
        start=meeting.start,
        end=meeting.end,
        video_url=meeting.video_url,
        location=meeting.location,
    )


def summary(meeting: MeetingView, title: str) -> str:
    about = ", ".join(s.first_name for s in meeting.students)
    return f"{title}: {meeting.teacher.name}" + (f" ({about})" if about else "")


def message_id(meeting: MeetingView, template: str, to: str, domain: str, once: str = "") -> str:
    """Fixed per meeting, template, SEQUENCE and recipient (plus ``once`` for answers that
    may repeat at one SEQUENCE): the outbox key (DESIGN §6)."""
    local, _, uid_domain = meeting.uid.partition("@")
    if meeting.organized_by_parent or not local.replace("-", "").isalnum():
        # A parent's UID may hold anything; its digest is a safe local part.
        local, uid_domain = hashlib.sha256(meeting.uid.encode()).hexdigest()[:24], domain
    digest = hashlib.sha256(to.lower().encode()).hexdigest()[:10]
    extra = f".{once}" if once else ""
    return f"<{template}.{meeting.sequence}.{local}.{digest}{extra}@{uid_domain or domain}>"


def _recipients(decision: Decision, notice: Notice, meeting: MeetingView) -> list[Party]:
    if notice.audience is Audience.ALL:
        return list(meeting.parties)
    asker = [p for p in meeting.parties if p.guardian_id == decision.asker]
    if notice.audience is Audience.ASKER:
        return asker
    return [p for p in meeting.parties if p not in asker]


def _next_step(decision: Decision, how: str, party: Party) -> str:
    """What ``party`` can do next: the new invitation, the waiting list or how else to book;
    nothing for a guardian the meeting's end ends it for (:attr:`Decision.left`)."""
    if party.guardian_id in decision.left:
        return ""
    if any(d.rule == "reproposal" for d in decision.then):
        return "We are sending you an invitation for another time."
    if decision.waitlist is not None:
        return "You are on the teacher's waiting list: when a time becomes free, it is yours."
    return how


#: Templates whose text ends with what the family can do next.
WITH_NEXT_STEP = frozenset({"declined", "expired_late", "expired", "removed"})
#: Answers that may repeat at one SEQUENCE (a second counter, a refresh): each needs a
#: Message-ID of its own.
_REPEATABLE = frozenset({"counter_declined", "current", "booking_accepted", "booking_declined"})


def _sender(meeting: MeetingView, notice: Notice, head: Letterhead) -> str:
    """Our answers about a parent's booking come from the teacher's booking address; the
    calendar messages of our meetings from their ORGANIZER; plain notices from ours."""
    if notice.method == "REPLY" or meeting.organized_by_parent:
        return meeting.teacher.booking_address
    if notice.method is None:
        return head.organizer
    return meeting.organizer or head.organizer


def _letter(
    decision: Decision,
    notice: Notice,
    meeting: MeetingView,
    party: Party,
    head: Letterhead,
    now: datetime,
) -> Letter:
    template = notice.template
    if template == "current":
        template = "confirmation" if meeting.state is MeetingState.CONFIRMED else "invitation"
    title = head.period_titles.get(meeting.period, meeting.period)
    how = messages.how_to_book(
        booking_address=meeting.teacher.booking_address,
        page_url=head.page_url(meeting.period),
        contact=head.contact,
    )
    repeatable = notice.template in _REPEATABLE or (
        notice.template == "cancellation" and decision.rule == "refresh"
    )
    once = f"{now:%Y%m%dT%H%M%S%f}" if repeatable else ""
    reply = notice.method == "REPLY"
    booked = meeting.organized_by_parent
    to = meeting.organizer if reply else party.email
    asker = next((p for p in meeting.parties if p.guardian_id == decision.asker), None)
    declined_by = ""
    if template == "declined" and asker is not None and asker.guardian_id != party.guardian_id:
        declined_by = asker.name
    status = ""
    if notice.method in ("REQUEST", "CANCEL"):
        status = _STATUS_OF_TEMPLATE.get(template, STATUS.CANCELLED)
    elif notice.method == "DECLINECOUNTER":
        confirmed = meeting.state is MeetingState.CONFIRMED
        status = STATUS.CONFIRMED if confirmed else STATUS.TENTATIVE
    start, end, sequence, kept = meeting.start, meeting.end, meeting.sequence, None
    if notice.asked is not None:
        # A declined update: the REPLY answers the version asked for (RFC 5546 §3.2.3 echoes
        # its SEQUENCE); the booking that stays is named in the text.
        (asked, sequence), kept = notice.asked, (meeting.start, meeting.end)
        start, end = asked.start, asked.end
    reply_to = head.contact if notice.method is None else ""
    link = ""
    if template == "feedback_request" and meeting.feedback_token:
        rules_link = head.feedback_links.get(meeting.period, "")
        link = _feedback_link(rules_link, meeting.feedback_token)
        if not link:
            # Replies come back to us: to this meeting's feedback address where our mail
            # server takes plus addresses, else to the organizer (matched by In-Reply-To).
            reply_to = (
                feedback_address(head.organizer, meeting.feedback_token)
                if head.plus_addressing
                else head.organizer
            )
    before = decision.before
    moved_from = (
        (before.start, before.end)
        if template == "confirmation"
        and before is not None
        and before.state is MeetingState.CONFIRMED
        and before.slot != meeting.slot
        else None
    )
    return Letter(
        template=template,
        method=notice.method,
        message_id=message_id(meeting, notice.template, to, head.domain, once),
        date=now,
        envelope_from=head.organizer,
        sender=_sender(meeting, notice, head),
        sender_name=meeting.teacher.name if reply or booked else head.school,
        to=to,
        to_name=party.name,
        reply_to=reply_to,
        school=head.school,
        contact=head.contact,
        tz=head.tz.key,
        period_title=title,
        uid=meeting.uid,
        sequence=sequence,
        start=start,
        end=end,
        status=status,
        organizer=meeting.organizer or head.organizer,
        organizer_name="" if booked else head.school,
        attendee=meeting.teacher.booking_address if reply else party.email,
        attendee_name=meeting.teacher.name if reply else party.name,
        partstat=(notice.partstat or PARTSTAT.DECLINED) if reply else party.partstat,
        summary=summary(meeting, title),
        teacher=meeting.teacher.name,
        students=tuple(s.first_name for s in meeting.students),
        video_url=meeting.video_url,
        location=meeting.location,
        reason=notice.reason,
        alternatives=tuple((a.start, a.end) for a in notice.alternatives),
        declined_by=declined_by,
        next_step=_next_step(decision, how, party) if template in WITH_NEXT_STEP else how,
        additional=head.additional_response if reply else "",
        kept=kept,
        moved_from=moved_from,
        request_status=notice.request_status,
        link=link,
    )


def _feedback_link(url: str, token: str) -> str:
    """``url`` with ``{token}`` replaced, or ``t=<token>`` appended ("" for no URL)."""
    if not url:
        return ""
    if "{token}" in url:
        return url.replace("{token}", token)
    return f"{url}{'&' if '?' in url else '?'}t={token}"
