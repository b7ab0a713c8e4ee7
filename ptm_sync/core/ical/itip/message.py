"""What an iTIP message is (RFC 5546): its methods, REQUEST-STATUS codes and values.

:class:`ItipMessage` is a received message as :func:`~ptm_sync.core.ical.itip.read.read_itip`
reads it, with its :class:`Attendee` values; :func:`is_newer` is the per-attendee ordering
rule of RFC 5546 §2.1.5 (DESIGN §4) that says whether one supersedes the last one applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from icalendar.enums import PARTSTAT

from ptm_sync.core.emailaddress import address_of

# REQUEST-STATUS values (RFC 5546 §3.6): "statcode;statdesc".
REQUEST_STATUS_SUCCESS = "2.0;Success"
REQUEST_STATUS_REPEATING_IGNORED = (
    "2.8;Success, repeating event ignored. Scheduled as a single component"
)
REQUEST_STATUS_INVALID_PROPERTY = "3.1;Invalid property value"  # ";PROPERTY" follows
REQUEST_STATUS_INVALID_USER = "3.7;Invalid calendar user"
REQUEST_STATUS_NO_AUTHORITY = "3.8;No authority"
REQUEST_STATUS_UNSUPPORTED = "3.14;Unsupported capability"
REQUEST_STATUS_CONFLICT = "4.0;Event conflict. Date/time is busy"

#: The longest UID we keep (the meetings table's column).  RFC 5545 §3.8.4.7 sets no
#: limit; clients write 36 to about 200 characters.
MAX_UID_LENGTH = 255


class Method(StrEnum):
    """iTIP methods (RFC 5546 §1.4)."""

    PUBLISH = "PUBLISH"
    REQUEST = "REQUEST"
    REPLY = "REPLY"
    ADD = "ADD"
    CANCEL = "CANCEL"
    REFRESH = "REFRESH"
    COUNTER = "COUNTER"
    DECLINECOUNTER = "DECLINECOUNTER"


#: Methods :func:`read_itip` accepts; the others are refused as ``unsupported-method``.
#: REQUEST and CANCEL come from parents organizing an event with a booking address.
READABLE_METHODS = frozenset(
    {Method.REQUEST, Method.REPLY, Method.CANCEL, Method.REFRESH, Method.COUNTER}
)


@dataclass(frozen=True, slots=True)
class Attendee:
    """One ATTENDEE of a received message; addresses lowercased, without ``mailto:``."""

    email: str
    partstat: str = PARTSTAT.NEEDS_ACTION
    cn: str | None = None
    role: str | None = None
    delegated_from: tuple[str, ...] = ()
    delegated_to: tuple[str, ...] = ()
    sent_by: str | None = None
    comment: str | None = None  # Google's X-RESPONSE-COMMENT: the note sent with an answer


@dataclass(frozen=True, slots=True)
class ItipMessage:
    """What a received iTIP message says, as read by :func:`read_itip`.

    ``start`` and ``end`` are aware UTC datetimes (or None when absent): for a COUNTER the
    proposed time (RFC 5546 §3.2.7), for a REQUEST the requested time, for a REPLY the time
    the attendee's copy of the meeting has (read leniently: a broken one is None).
    ``organizer`` is None when the sender left it out (Outlook replies do): match such
    messages by UID.

    ``proposes_time`` is True when the sender marks the message as a proposal of another
    time: METHOD:COUNTER (RFC 5546 §3.2.7).  That is what Outlook and Exchange send for
    "Propose new time" (with ``X-MS-OLK-ORIGINALSTART``, MS-OXCICAL §2.1.3.1.1.20.58), and
    what Google Calendar sends too (``PRODID:-//Google Inc//Google Calendar…``, PARTSTAT
    TENTATIVE, the note in ``X-RESPONSE-COMMENT``; seen in the Google COUNTER samples of
    linagora/tmail-backend's tests).  A REPLY carries no such marker: a REPLY whose time
    differs from the meeting's is found with :meth:`proposal`.
    """

    method: Method
    uid: str
    sequence: int = 0
    dtstamp: datetime | None = None
    recurrence_id: datetime | None = None
    organizer: str | None = None
    organizer_name: str | None = None
    attendees: tuple[Attendee, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    recurring: bool = False
    summary: str | None = None
    location: str | None = None
    status: str | None = None
    comment: str | None = None
    request_status: tuple[str, ...] = ()
    proposes_time: bool = False

    def attendee(self, email: str) -> Attendee | None:
        """The ATTENDEE with this address (any case, with or without ``mailto:``), if any."""
        wanted = address_of(email)
        return next((a for a in self.attendees if a.email == wanted), None)

    @property
    def replying_attendee(self) -> Attendee | None:
        """The one ATTENDEE of a REPLY/COUNTER/REFRESH (RFC 5546 §3.2.3); None if not one."""
        return self.attendees[0] if len(self.attendees) == 1 else None

    def proposal(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """The other time this answer asks for, given the meeting's ``start`` and ``end``.

        A COUNTER or REPLY that carries a whole timed span (DTSTART and DTEND or DURATION,
        not all-day) different from the meeting's asks for that span; anything else asks
        for nothing (None).  A REPLY to the meeting as it is echoes the meeting's time, so a
        different time in a REPLY is a proposal (a guest's "Propose a new time" sent as a
        REPLY) or an answer to an older version of the meeting.

        Call it only for a message :func:`is_newer` than the last one applied: a REPLY to
        an outdated SEQUENCE (RFC 5546 §2.1.5) carries that version's time, not a wish.
        """
        if self.method not in (Method.COUNTER, Method.REPLY) or self.all_day:
            return None
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        if (self.start, self.end) == (start.astimezone(UTC), end.astimezone(UTC)):
            return None
        return self.start, self.end


def is_newer(
    seq: int, dtstamp: datetime | None, last_seq: int | None, last_dtstamp: datetime | None
) -> bool:
    """Whether a message from an attendee supersedes the last one we applied.

    RFC 5546 §2.1.5 and DESIGN §4: a higher SEQUENCE wins, then a later DTSTAMP; an equal
    pair is a duplicate and a lower one is stale.  A missing DTSTAMP counts as the oldest.
    ``last_seq`` None means nothing was applied yet.
    """
    if last_seq is None:
        return True
    if seq != last_seq:
        return seq > last_seq
    if dtstamp is None:
        return False
    return last_dtstamp is None or dtstamp > last_dtstamp
