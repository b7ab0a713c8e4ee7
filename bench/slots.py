"""Slot engine benchmark: computing everybody's slots must cost little next to reading calendars.

``slots_over_parse``: a school of 2,000 teachers, two evenings of 15:00-20:00, 15-minute
slots, 30 busy events and 3 meetings per teacher.  Ours is the time ``teacher_slots`` takes
for every teacher; the floor is the time icalendar takes merely to parse the same busy
events as iCalendar text (one VCALENDAR per teacher), which any sync must do anyway.  The
events are written with UTC times and no VTIMEZONE, the cheapest text there is to parse,
so the floor is low and the ratio errs against us.  Target: <= 0.25.

``requests_per_idle_sync``: teachers' calendars on an embedded Radicale (with password
authentication, as a school's server has), a full sync pass, then a second pass in which
nothing changed, run with freshly opened connectors as a new ``ptm-sync sync`` process
would.  A WSGI middleware in front of Radicale counts what the server receives; the figure
is the requests of the idle pass per calendar.  Target: <= 1.0.

Run from the repository root: ``.venv/bin/python bench/slots.py [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from _common import Figure, best_of, run, say

from ptm_sync.core.model import Interval, Window
from ptm_sync.core.slots import teacher_slots

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


class RequestCounter:
    """WSGI middleware: counts the requests the wrapped application receives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self._lock:
            self.count += 1
        return self.app(environ, start_response)


def busy_event(uid: str, start: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//ptm-sync//bench//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20270301T120000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{start + timedelta(minutes=45):%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def requests_per_idle_sync(options: argparse.Namespace) -> Figure:
    from caldav.davclient import DAVClient

    from ptm_sync.adapters.store import Database, Teacher
    from ptm_sync.app.sync import opened, sync
    from ptm_sync.config import settings as config_mod
    from ptm_sync.demo.embedded import start_radicale

    teachers = 20 if options.quick else 200
    events = 5
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="ptm-bench-") as tmp:
        folder = Path(tmp)
        (folder / "users").write_text("bench:bench-secret\n", encoding="utf-8")
        counter: RequestCounter | None = None

        def count(app: Any) -> RequestCounter:
            nonlocal counter
            counter = RequestCounter(app)
            return counter

        radicale = start_radicale(folder / "radicale", htpasswd=folder / "users", wrap=count)
        assert counter is not None
        try:
            say(
                f"requests_per_idle_sync: {teachers} calendars x {events} events "
                f"on Radicale at {radicale.url}"
            )
            client = DAVClient(radicale.url, username="bench", password="bench-secret")
            for n in range(teachers):
                calendar = client.principal().make_calendar(cal_id=f"teacher-{n}")
                for i in range(events):
                    start = local(rng.choice(EVENINGS), time(14)) + timedelta(minutes=15 * i)
                    calendar.save_event(busy_event(f"t{n}-e{i}@bench", start))
            client.close()
            config = config_mod.parse(
                f"""
[school]
name = "Bench High"
timezone = "{ZONE.key}"
contact = "office@bench.example.org"
[database]
url = "sqlite:///{folder / "bench.db"}"
[[accounts]]
id = "dav"
type = "caldav"
url = "{radicale.url}"
username = "bench"
password = "bench-secret"
[[periods]]
id = "bench"
title = "Bench"
windows = [{", ".join(f'"{d}T15:00/20:00"' for d in EVENINGS)}]
"""
            )
            db = Database(config.database.url)
            db.migrate()
            with db.write() as session:
                for n in range(teachers):
                    session.add(
                        Teacher(
                            email=f"t{n}@bench.example.org",
                            name=f"Teacher {n}",
                            key=f"t{n}",
                            account="dav",
                            calendar=f"/bench/teacher-{n}/",
                        )
                    )
            now = datetime.now(UTC)
            passes = []
            for _ in range(2):  # full, then idle; each with fresh connectors (a new process)
                before = counter.count
                with opened(config) as connectors:
                    results = sync(db, config, connectors, now=now)
                failed = [r for r in results if r.error]
                assert not failed, failed[0].error
                passes.append(counter.count - before)
            db.dispose()
        finally:
            radicale.stop()
    full, idle = passes
    say(f"  full sync pass: {full:6d} requests  ({full / teachers:.2f} per calendar)")
    say(f"  idle sync pass: {idle:6d} requests  ({idle / teachers:.2f} per calendar)")
    return Figure("requests_per_idle_sync", idle / teachers, "<=", 1.0)


if __name__ == "__main__":
    raise SystemExit(run(__doc__, [slots_over_parse, requests_per_idle_sync]))
