"""The messages of a decision, as emails: REQUEST, CANCEL, DECLINECOUNTER, REPLY, plain.

PURE: a :class:`~ptm_sync.booking.values.Decision` and the school's letterhead in, emails
out; nothing is sent or stored here (the applier puts them in the outbox).  Each email has a
fixed Message-ID built from the meeting, the template, the SEQUENCE and the recipient, so a
redelivery is recognisably the same message (DESIGN §6).

Calendar messages follow DESIGN §4: one email per guardian, each naming that guardian as
ATTENDEE with their own answer; for a meeting a parent organizes through a teacher's booking
address we are the ATTENDEE and answer with a REPLY (RFC 5546 §3.2.3) from that address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TypedDict
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar.enums import PARTSTAT, STATUS

from ptm_sync import imip, itip, messages
from ptm_sync.booking.values import Audience, Decision, MeetingView, Notice, Party
from ptm_sync.model import MeetingState

PLAIN_TEMPLATES = frozenset({"booking_details", "moved_booked", "waitlisted"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Letterhead:
    """What every message needs from the config: who we are and how to reach us.

    ``organizer``: ``[mail] organizer`` (the envelope sender and the Message-ID domain);
    ``public_url``: ``[web] public_url``; ``additional_response``: ``[booking_address]
    add_additional_response``, appended to our answers to booking requests.
    """

    school: str
    contact: str
    tz: ZoneInfo
    organizer: str
    public_url: str = ""
    period_titles: Mapping[str, str]
    additional_response: str = ""

    @property
    def domain(self) -> str:
        return self.organizer.rsplit("@", 1)[1]

    def page_url(self, period: str) -> str:
        base = self.public_url.rstrip("/")
        return f"{base}/periods/{period}" if base else ""


class _Common(TypedDict):
    """The keyword arguments every text of :mod:`ptm_sync.messages` takes."""

    school: str
    period_title: str
    meeting: messages.MeetingFacts
    tz: ZoneInfo
    contact: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One email to send: to ``to``, the envelope sender ``sender``; ``message_id`` is the
    outbox key."""

    to: str
    sender: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


def compose(decision: Decision, head: Letterhead, now: datetime) -> list[Outgoing]:
    """Every email of ``decision``'s notices (not of its follow-ups in ``then``)."""
    meeting = decision.after or decision.before
    if meeting is None:
        return []
    out: list[Outgoing] = []
    for notice in decision.notices:
        out.extend(_notice(decision, notice, meeting, head, now))
    if decision.waitlist is not None and decision.before is not None:
        text = messages.waitlisted(
            school=head.school,
            period_title=head.period_titles.get(meeting.period, meeting.period),
            meeting=facts(meeting),
            contact=head.contact,
        )
        for party in meeting.parties:
            out.append(_plain(meeting, party, "waitlisted", text, head, now, ""))
    return out


def facts(meeting: MeetingView) -> messages.MeetingFacts:
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


def _recipients(decision: Decision, notice: Notice, meeting: MeetingView) -> list[Party]:
    if notice.audience is Audience.ALL:
        return list(meeting.parties)
    asker = [p for p in meeting.parties if p.guardian_id == decision.asker]
    if notice.audience is Audience.ASKER:
        return asker
    return [p for p in meeting.parties if p not in asker]


def _notice(
    decision: Decision, notice: Notice, meeting: MeetingView, head: Letterhead, now: datetime
) -> list[Outgoing]:
    title = head.period_titles.get(meeting.period, meeting.period)
    common = _Common(
        school=head.school,
        period_title=title,
        meeting=facts(meeting),
        tz=head.tz,
        contact=head.contact,
    )
    how = messages.how_to_book(
        booking_address=meeting.teacher.booking_address,
        page_url=head.page_url(meeting.period),
        contact=head.contact,
    )
    spans = [(a.start, a.end) for a in notice.alternatives]
    # Repeatable answers (a second counter, a refresh) need a Message-ID of their own.
    once = f"{now:%Y%m%dT%H%M%S%f}"
    out = []
    for party in _recipients(decision, notice, meeting):
        template = notice.template
        if notice.method == "REPLY":
            accepted = notice.partstat == PARTSTAT.ACCEPTED
            text = messages.booking_answer(
                **common, accepted=accepted, reason=notice.reason, alternatives=spans,
                how=how, additional=head.additional_response,
            )  # fmt: skip
            cal = _reply(meeting, notice, text.plain, now)
            out.append(_email(meeting, party, template, text, cal, "REPLY", head, now, once))
            continue
        if template in PLAIN_TEMPLATES:
            if template == "booking_details":
                text = messages.booking_details(**common)
            else:
                text = messages.moved_booked(**common, alternatives=spans)
            out.append(_plain(meeting, party, template, text, head, now, once))
            continue
        text, status = _text(decision, notice, meeting, party, common, how, spans)
        inv = invitation(meeting, party, status, text, head, now)
        if notice.method == "DECLINECOUNTER":
            cal = itip.build_decline_counter(inv, head.tz, text.plain)
            out.append(
                _email(meeting, party, template, text, cal, "DECLINECOUNTER", head, now, once)
            )
        elif notice.method == "CANCEL":
            cal = itip.build_cancel(inv, head.tz)
            key = once if template == "cancellation" and decision.rule == "refresh" else ""
            out.append(_email(meeting, party, template, text, cal, "CANCEL", head, now, key))
        else:
            cal = itip.build_request(inv, head.tz)
            key = once if template == "current" else ""
            out.append(_email(meeting, party, template, text, cal, "REQUEST", head, now, key))
    return out


def _text(
    decision: Decision,
    notice: Notice,
    meeting: MeetingView,
    party: Party,
    common: _Common,
    how: str,
    spans: list[tuple[datetime, datetime]],
) -> tuple[messages.Text, str]:
    """The text of a calendar message to ``party`` and the STATUS its event carries."""
    template = notice.template
    kw = common
    if template == "current":
        template = "confirmation" if meeting.state is MeetingState.CONFIRMED else "invitation"
    if template in ("invitation", "reproposal", "waitlist_offer"):
        makers: dict[str, Callable[..., messages.Text]] = {
            "invitation": messages.invitation,
            "reproposal": messages.reproposal,
            "waitlist_offer": messages.waitlist_offer,
        }
        return makers[template](**kw), STATUS.TENTATIVE
    if template in ("confirmation", "moved"):
        maker = messages.confirmation if template == "confirmation" else messages.moved
        return maker(**kw), STATUS.CONFIRMED
    if template == "counter_declined":
        return messages.counter_declined(**kw, why=notice.reason, alternatives=spans), (
            STATUS.CONFIRMED if meeting.state is MeetingState.CONFIRMED else STATUS.TENTATIVE
        )
    if template == "declined":
        asker = next((p for p in meeting.parties if p.guardian_id == decision.asker), None)
        by = asker.name if asker is not None and asker.guardian_id != party.guardian_id else ""
        text = messages.declined(**kw, page_url="", declined_by=by)
        return _add(text, _next_step(decision, how)), STATUS.CANCELLED
    reason = notice.reason
    text = messages.cancellation(**kw, reason=reason)
    if template in ("expired_late", "expired", "removed", "superseded"):
        text = _add(text, _next_step(decision, how))
    return text, STATUS.CANCELLED


def _next_step(decision: Decision, how: str) -> str:
    if any(d.rule == "reproposal" for d in decision.then):
        return "We are sending you an invitation for another time."
    if decision.waitlist is not None:
        return "You are on the teacher's waiting list: when a time becomes free, it is yours."
    return how


def _add(text: messages.Text, line: str) -> messages.Text:
    """``text`` with one more paragraph before the closing lines."""
    if not line:
        return text
    plain = text.plain.rstrip("\n").split("\n\n")
    plain.insert(max(len(plain) - 2, 1), line)
    html = text.html.replace("</body>", f"<p>{_escape(line)}</p>\n</body>", 1)
    return messages.Text(text.subject, "\n\n".join(plain) + "\n", html)


def _escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def invitation(
    meeting: MeetingView,
    party: Party,
    status: str,
    text: messages.Text,
    head: Letterhead,
    now: datetime,
) -> itip.Invitation:
    """The meeting as one guardian's calendar sees it (that guardian the ATTENDEE, with
    their own answer as PARTSTAT); ``text`` becomes the DESCRIPTION."""
    return itip.Invitation(
        uid=meeting.uid,
        sequence=meeting.sequence,
        start=meeting.start,
        end=meeting.end,
        summary=summary(meeting, head.period_titles.get(meeting.period, meeting.period)),
        organizer=meeting.organizer or head.organizer,
        organizer_name=head.school,
        attendee=party.email,
        attendee_name=party.name,
        status=status,
        dtstamp=now,
        description=text.plain,
        location=meeting.location,
        video_url=meeting.video_url,
        partstat=party.partstat,
    )


def _reply(meeting: MeetingView, notice: Notice, comment: str, now: datetime) -> Calendar:
    """Our REPLY as the teacher's booking address (RFC 5546 §3.2.3)."""
    request = itip.ItipMessage(
        method=itip.Method.REQUEST,
        uid=meeting.uid,
        sequence=meeting.sequence,
        organizer=meeting.organizer,
        start=meeting.start,
        end=meeting.end,
    )
    accepted = notice.partstat == PARTSTAT.ACCEPTED
    return itip.build_reply(
        request,
        attendee=meeting.teacher.booking_address,
        attendee_name=meeting.teacher.name,
        partstat=notice.partstat or PARTSTAT.DECLINED,
        dtstamp=now,
        comment=comment if not accepted else "",
        request_status=None,
    )


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


def _email(
    meeting: MeetingView,
    party: Party,
    template: str,
    text: messages.Text,
    cal: Calendar,
    method: str,
    head: Letterhead,
    now: datetime,
    once: str,
) -> Outgoing:
    reply = method == "REPLY"
    to = meeting.organizer if reply else party.email
    sender = meeting.teacher.booking_address if reply else (meeting.organizer or head.organizer)
    msg = imip.build_invitation_email(
        cal=cal,
        method=method,
        sender=sender,
        sender_name=meeting.teacher.name if reply else head.school,
        to=to,
        to_name=party.name,
        subject=text.subject,
        text=text.plain,
        html=text.html,
        message_id=message_id(meeting, template, to, head.domain, once),
        date=now,
    )
    return Outgoing(to, head.organizer, msg)


def _plain(
    meeting: MeetingView,
    party: Party,
    template: str,
    text: messages.Text,
    head: Letterhead,
    now: datetime,
    once: str,
) -> Outgoing:
    booked = meeting.organized_by_parent
    msg = imip.build_plain_email(
        sender=meeting.teacher.booking_address if booked else head.organizer,
        sender_name=meeting.teacher.name if booked else head.school,
        to=party.email,
        to_name=party.name,
        subject=text.subject,
        text=text.plain,
        html=text.html,
        message_id=message_id(meeting, template, party.email, head.domain, once),
        date=now,
        reply_to=head.contact,
    )
    return Outgoing(party.email, head.organizer, msg)
