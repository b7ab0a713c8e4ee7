"""Properties of ptm_sync.core.ical.busy that hold for any event and any window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.model import Busy
from tests.support.calendar_data import SCHOOL_TZ, ics, vevent

BASE = datetime(2027, 3, 1, tzinfo=UTC)

ZONES = ["Z", "floating", "Europe/Berlin", "America/New_York", '"W. Europe Standard Time"']


@st.composite
def events(draw: st.DrawFn) -> list[str]:
    """The property lines of one VEVENT: any zone, all-day or timed, maybe recurring."""
    start = BASE + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 50 * 24 * 60)))
    lines: list[str] = []
    if draw(st.booleans()):
        days = draw(st.integers(0, 3))
        lines.append(f"DTSTART;VALUE=DATE:{start:%Y%m%d}")
        if days:
            lines.append(f"DTEND;VALUE=DATE:{start + timedelta(days=days):%Y%m%d}")
    else:
        zone = draw(st.sampled_from(ZONES))
        length = timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        for name, moment in (("DTSTART", start), ("DTEND", start + length)):
            if zone == "Z":
                lines.append(f"{name}:{moment:%Y%m%dT%H%M%S}Z")
            elif zone == "floating":
                lines.append(f"{name}:{moment:%Y%m%dT%H%M%S}")
            else:
                lines.append(f"{name};TZID={zone}:{moment:%Y%m%dT%H%M%S}")
    if draw(st.booleans()):
        freq = draw(st.sampled_from(["DAILY", "WEEKLY"]))
        lines.append(f"RRULE:FREQ={freq};COUNT={draw(st.integers(1, 6))}")
    lines.append(f"STATUS:{draw(st.sampled_from(['CONFIRMED', 'TENTATIVE', 'CANCELLED']))}")
    lines.append(f"TRANSP:{draw(st.sampled_from(['OPAQUE', 'OPAQUE', 'TRANSPARENT']))}")
    return lines


calendars = st.lists(events(), min_size=0, max_size=4).map(
    lambda events: ics(*(vevent(f"uid-{n}", *lines) for n, lines in enumerate(events)))
)
moments = st.integers(0, 45 * 24 * 4).map(lambda quarter: BASE + timedelta(minutes=15 * quarter))


def merged(spans: list[Busy]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for busy in sorted(spans, key=lambda b: b.start):
        if out and busy.start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], busy.end))
        else:
            out.append((busy.start, busy.end))
    return out


@settings(max_examples=80, deadline=None)
@given(calendars, moments, moments)
def test_busy_times_lie_inside_the_window_sorted_and_in_utc(
    text: str, first: datetime, second: datetime
) -> None:
    start, end = min(first, second), max(first, second)
    busy = busy_times(text, start, end, SCHOOL_TZ)
    assert all(start <= b.start < b.end <= end for b in busy)
    assert all(b.start.tzinfo is UTC and b.end.tzinfo is UTC for b in busy)
    assert [(b.start, b.end) for b in busy] == sorted((b.start, b.end) for b in busy)


@settings(max_examples=60, deadline=None)
@given(calendars, moments, moments, moments)
def test_splitting_the_window_covers_the_same_time(
    text: str, first: datetime, second: datetime, third: datetime
) -> None:
    start, middle, end = sorted((first, second, third))
    whole = busy_times(text, start, end, SCHOOL_TZ)
    parts = busy_times(text, start, middle, SCHOOL_TZ) + busy_times(text, middle, end, SCHOOL_TZ)
    assert merged(whole) == merged(parts)


@settings(max_examples=40, deadline=None)
@given(calendars)
def test_ignoring_every_uid_leaves_the_time_free(text: str) -> None:
    every_uid = {f"uid-{n}" for n in range(4)}
    assert busy_times(text, BASE, BASE + timedelta(days=45), SCHOOL_TZ, ignore_uids=every_uid) == []
