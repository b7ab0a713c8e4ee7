"""Requests to teachers' booking addresses, for the in-process tests of the seeded school."""

from __future__ import annotations

from datetime import datetime, timedelta

from ptm_sync.core.model import Interval
from ptm_sync.demo import organizers
from tests.support.booking import TZ, SeededSchool

#: The default booking address of a teacher: book+<key>@<the organizer's domain>.
DOMAIN = "lincoln.example.org"


def address_of(teacher: str) -> str:
    return f"book+{teacher.split('@')[0].split('.')[0]}@{DOMAIN}"


def booking_request(
    school: SeededSchool,
    parent: str,
    teacher: str,
    *,
    slot: int | Interval,
    client: str = "gmail",
    sequence: int = 0,
    uid: str = "",
    method: str = "REQUEST",
    at: timedelta = timedelta(minutes=10),
    period_id: str = "spring",
    name: str = "",
) -> bytes:
    """``parent`` invites ``teacher``'s booking address to ``slot`` (a grid index or a span)."""
    when = slot if isinstance(slot, Interval) else school.slot(slot, period_id)
    booking = organizers.Booking(
        parent=parent,
        parent_name=name or parent.split("@")[0].title(),
        booking_address=address_of(teacher),
        start=when.start,
        end=when.end,
        uid=uid,
        sequence=sequence,
    )
    now: datetime = school.now + at
    return organizers.request(client, booking, tz=TZ, now=now, method=method)
