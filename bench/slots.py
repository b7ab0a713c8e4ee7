"""Slot engine benchmark: computing everybody's slots must cost little next to reading calendars.

``slots_over_parse``: a school of 2,000 teachers, two evenings of 15:00-20:00, 15-minute
slots, 30 busy events and 3 meetings per teacher.  Ours is the time ``teacher_slots`` takes
for every teacher; the floor is the time icalendar takes merely to parse the same busy
events as iCalendar text (one VCALENDAR per teacher), which any sync must do anyway.  The
events are written with UTC times and no VTIMEZONE, the cheapest text there is to parse,
so the floor is low and the ratio errs against us.  Target: <= 0.25.

Run from the repository root: ``.venv/bin/python bench/slots.py [--quick]``.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
from _common import Figure, best_of, run, say

from ptm_sync.model import Interval, Window
from ptm_sync.slots import teacher_slots

ZONE = ZoneInfo("America/New_York")
EVENINGS = (date(2027, 4, 13), date(2027, 4, 15))
WINDOW = (time(15, 0), time(20, 0))
SLOT_MINUTES = 15
BUSY_PER_TEACHER = 30
MEETINGS_PER_TEACHER = 3
SEED = 20270413


@dataclass(frozen=True, slots=True)
class School:
    """The generated workload: the period's windows and each teacher's busy time."""

    windows: list[Window]
    busy: list[list[Interval]]
    meetings: list[list[Interval]]

    @property
    def events(self) -> int:
        return sum(len(b) for b in self.busy)


def local(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, ZONE).astimezone(UTC)


def school(teachers: int, seed: int = SEED) -> School:
    """A reproducible school: busy events across the working day, some over the windows."""
    rng = random.Random(seed)
    windows = [Window(local(day, WINDOW[0]), local(day, WINDOW[1])) for day in EVENINGS]
    busy: list[list[Interval]] = []
    meetings: list[list[Interval]] = []
    for _ in range(teachers):
        events = []
        for _ in range(BUSY_PER_TEACHER):
            day = rng.choice(EVENINGS)
            start = local(day, time(7)) + timedelta(minutes=5 * rng.randrange(0, 14 * 12))
            length = timedelta(minutes=rng.choice((15, 30, 45, 60, 90, 120)))
            events.append(Interval(start, start + length))
        busy.append(events)
        taken = []
        for _ in range(MEETINGS_PER_TEACHER):
            window = rng.choice(windows)
            start = window.start + timedelta(minutes=SLOT_MINUTES * rng.randrange(0, 20))
            taken.append(Interval(start, start + timedelta(minutes=SLOT_MINUTES)))
        meetings.append(taken)
    return School(windows, busy, meetings)


def as_ical(number: int, events: list[Interval]) -> bytes:
    """One teacher's busy events as the VCALENDAR a calendar server would send."""
    stamp = "20270301T120000Z"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ptm-sync//bench//EN"]
    for i, event in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:teacher-{number}-event-{i}@bench.example.org",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{event.start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{event.end:%Y%m%dT%H%M%SZ}",
            f"SUMMARY:Busy {i}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def slots_over_parse(options: argparse.Namespace) -> Figure:
    teachers = 200 if options.quick else 2000
    repeat = options.repeat or 3
    generated = school(teachers)
    calendars = [as_ical(n, events) for n, events in enumerate(generated.busy)]
    say(
        f"slots_over_parse: {teachers} teachers x {len(EVENINGS)} evenings, "
        f"{generated.events} busy events, {SLOT_MINUTES}-minute slots, best of {repeat}"
    )

    def compute() -> int:
        found = 0
        for busy, meetings in zip(generated.busy, generated.meetings, strict=True):
            found += len(teacher_slots(generated.windows, SLOT_MINUTES, 0, busy, meetings))
        return found

    def parse() -> int:
        return sum(len(icalendar.Calendar.from_ical(text).subcomponents) for text in calendars)

    # Checked outside the timing: both sides do the work we think they do.
    offered, parsed = compute(), parse()
    assert parsed == generated.events, (parsed, generated.events)
    ours = best_of(repeat, compute)
    floor = best_of(repeat, parse)
    say(f"  teacher_slots for every teacher: {ours:8.3f} s  ({offered} free slots)")
    say(f"  icalendar parse of the events:   {floor:8.3f} s  ({parsed} events)")
    return Figure("slots_over_parse", ours / floor, "<=", 0.25)


if __name__ == "__main__":
    raise SystemExit(run(__doc__, [slots_over_parse]))
