"""``icaltext.serialize`` writes exactly the bytes icalendar's ``to_ical()`` writes.

Invitations are written by our own serializer (shared VTIMEZONE text, quick folding); the
reference is icalendar itself.  Texts are drawn to hit the folding rules: multi-octet
characters across the 75-octet boundary, and the escape characters (``\\`` and ``^``) that
icalendar keeps together with what follows them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event

from ptm_sync.core.ical import itip
from ptm_sync.core.ical import text as icaltext

ZONES = [ZoneInfo(z) for z in ("America/New_York", "Europe/Berlin", "Asia/Kolkata", "UTC")]
# Few characters, so that the special ones often land right at a fold.
ALPHABET = 'ab \\^;,:"\n–é😀'
texts = st.text(alphabet=ALPHABET, max_size=260)
short = st.text(alphabet=ALPHABET, max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    day=st.integers(min_value=0, max_value=700),
    summary=texts,
    description=texts,
    location=short,
    name=short,
    comment=texts,
    room=st.integers(min_value=0, max_value=200),
    status=st.sampled_from(["TENTATIVE", "CONFIRMED"]),
)
def test_invitations_are_written_as_icalendar_writes_them(
    zone: ZoneInfo,
    day: int,
    summary: str,
    description: str,
    location: str,
    name: str,
    comment: str,
    room: int,
    status: str,
) -> None:
    start = datetime(2026, 1, 1, 18, 0, tzinfo=UTC) + timedelta(days=day)
    inv = itip.Invitation(
        uid=f"u{day}@lincoln.example.org",
        sequence=day % 4,
        start=start,
        end=start + timedelta(minutes=15),
        summary=summary,
        organizer="conferences@lincoln.example.org",
        organizer_name=name,
        attendee="pat@example.net",
        attendee_name=name[::-1],
        status=status,
        dtstamp=start - timedelta(days=3),
        description=description,
        location=location,
        video_url="https://meet.example.org/" + "r" * room if room else "",
        comment=comment,
    )
    for calendar in (itip.build_request(inv, zone), itip.build_cancel(inv, zone)):
        assert icaltext.serialize(calendar) == calendar.to_ical()


@settings(max_examples=300, deadline=None)
@given(prefix=st.integers(min_value=0, max_value=80), text=texts)
def test_any_line_is_folded_where_icalendar_folds_it(prefix: int, text: str) -> None:
    event = Event.new(uid="x@example.org", stamp=datetime(2027, 1, 1, tzinfo=UTC))
    event.add("SUMMARY", "x" * prefix + text)
    event.add("X-RAW", "x" * prefix + text.replace("\n", " "))
    calendar = Calendar.new(prodid=itip.PRODID, subcomponents=[event])
    assert icaltext.serialize(calendar) == calendar.to_ical()


def test_calendars_sharing_a_zone_are_each_written_whole() -> None:
    zone = ZoneInfo("America/New_York")
    start = datetime(2027, 4, 13, 19, 0, tzinfo=UTC)
    calendars = []
    for n in range(3):
        inv = itip.Invitation(
            uid=f"u{n}@lincoln.example.org",
            sequence=0,
            start=start + timedelta(minutes=15 * n),
            end=start + timedelta(minutes=15 * n + 15),
            summary=f"Meeting {n}",
            organizer="conferences@lincoln.example.org",
            attendee="pat@example.net",
            status="TENTATIVE",
            dtstamp=start,
        )
        calendars.append(itip.build_request(inv, zone))
    zones = [c.walk("VTIMEZONE")[0] for c in calendars]
    assert zones[0] is zones[1] is zones[2]  # made once, shared
    for calendar in calendars:
        written = icaltext.serialize(calendar)
        assert written == calendar.to_ical()
        assert written.count(b"BEGIN:VTIMEZONE") == 1 and written.count(b"BEGIN:VEVENT") == 1
