"""The words of ``nudge`` (DESIGN §7): how a household that has not booked yet can book.
PURE.

One email per household and period lists each teacher the household still needs: the
invitation waiting for its answer (if one is), the teacher's booking address (invite it at a
free time, like a room), the period's page of free times and the office to call or write
to.  Only the household's own data appear.  Times are in the school's zone, the zone named.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ptm_sync.core.booking.aftercare_text import at, zone_words
from ptm_sync.core.booking.messages import Text, _text
from ptm_sync.core.model import Interval


@dataclass(frozen=True, slots=True)
class ToBook:
    """A teacher the household has not booked: ``students`` (names) the meeting is about,
    the teacher's ``booking_address``, and ``invitation``: the time proposed to the household
    and still waiting for its answer (None: none is)."""

    teacher_name: str
    students: tuple[str, ...]
    booking_address: str
    invitation: Interval | None = None


def nudge(
    *,
    school: str,
    period_title: str,
    guardian_names: Sequence[str],
    teachers: Sequence[ToBook],
    tz: ZoneInfo,
    contact: str,
    page_url: str = "",
    closes: datetime | None = None,
) -> Text:
    """The reminder to book: each teacher still to book and how, the page of free times,
    the deadline (``closes``, aware; shown in the school's zone, named in words) and whom to
    ask.

    Raises:
        ValueError: ``teachers`` is empty (there is nothing to nudge about).
    """
    if not teachers:
        raise ValueError("a nudge names at least one teacher to book")
    lines = "\n".join(_line(t, tz) for t in teachers)
    return _text(
        f"Please book: {period_title} at {school}",
        [
            f"Dear {' and '.join(guardian_names) or 'parent'},",
            f"You have not booked your {period_title.lower()} meeting yet with:\n{lines}",
            "To answer an invitation, open it in your mail or calendar app and press Accept, "
            "or Propose new time. To book another time, send a meeting invitation from your "
            "calendar to the teacher's booking address at one of the free times; you get an "
            "answer by email.",
            f"Free times: {page_url}" if page_url else "",
            f"Booking closes {closes.astimezone(tz):%A %d %B %Y, %H:%M} ({zone_words(tz)})."
            if closes
            else "",
            f"Questions, or to book by phone: write to {contact}.",
            school,
        ],
    )


def _line(teacher: ToBook, tz: ZoneInfo) -> str:
    about = f" about {' and '.join(teacher.students)}" if teacher.students else ""
    how = f"booking address {teacher.booking_address}"
    if teacher.invitation is not None:
        when = at(teacher.invitation.start, teacher.invitation.end, tz)
        how = f"the invitation for {when} waits for your answer; or {how}"
    return f"- {teacher.teacher_name}{about}: {how}"
