"""A sample school with realistic teacher calendars, and the free times it must publish.

Used by the end-to-end availability tests and the web tests.  The school is in New York;
its conference evenings straddle the spring clock change, and every teacher's calendar
holds one thing real calendars do (see :data:`STORIES`).  Dates are computed from ``today``
(two years ahead), because the command line filters out slots in the past by wall-clock time.

The expected free times are derived from plain statements of when each teacher is busy in
local time (:attr:`SampleSchool.busy`), never from the code under test.

Every event title, student name and guardian name holds a word that must never be
published (:attr:`SampleSchool.private_words`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar, put_ics
from tests.support.calendar_data import VTIMEZONE_OUTLOOK_WEST_EUROPE, ics, vevent
from tests.support.cli import config_text, write_config

TZ = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = (time(16, 0), time(21, 0))
SLOT_MINUTES = 30
PERIOD_ID = "spring"
PERIOD_TITLE = "Spring parent-teacher conferences"

ADA = "ada.lovelace@lincoln.example.org"
ALAN = "alan.turing@lincoln.example.org"
GRACE = "grace.hopper@lincoln.example.org"
ISAAC = "isaac.newton@lincoln.example.org"
MARIE = "marie.curie@lincoln.example.org"

NAMES = {
    ADA: "Ada Lovelace",
    ALAN: "Alan Turing",
    GRACE: "Grace Hopper",
    ISAAC: "Isaac Newton",
    MARIE: "Marie Curie",
}

STORIES = {
    ADA: "weekly staff meeting begun before the clock change, one instance moved, one excluded",
    ALAN: "all-day absence: the whole local day, not the UTC day",
    GRACE: "tentative is busy; transparent and cancelled are free",
    ISAAC: "floating time is the school's time",
    MARIE: "Outlook events: 'W. Europe Standard Time' with its VTIMEZONE, 'Eastern Standard "
    "Time' without one",
}

#: Students and guardians (student_id, student, guardian email, guardian, teachers).
FAMILIES = [
    ("S1", "Quentin Marmaduke", "pq@example.net", "Philippa Quigglesworth", [ADA, GRACE]),
    ("S2", "Ottoline Brackenridge", "pq@example.net", "Philippa Quigglesworth", [ALAN]),
    ("S3", "Peregrine Featherstonehaugh", "bw@example.com", "Bartholomew Wigglesby", [ISAAC]),
    ("S4", "Wilhelmina Thistlewood", "cz@example.org", "Cornelius Zabriskie", [MARIE, ADA]),
]


def teacher_key(email: str) -> str:
    """The key the roster import gives (DESIGN §7: stable, URL-safe, from the email)."""
    return email.split("@")[0].replace(".", "-")


def second_sunday_of_march(year: int) -> date:
    first = date(year, 3, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7)


@dataclass(frozen=True)
class SampleSchool:
    """The school for one run; ``days`` are the three conference evenings."""

    today: date

    @property
    def clock_change(self) -> date:
        """US daylight saving starts on the second Sunday of March."""
        return second_sunday_of_march(self.today.year + 2)

    @property
    def days(self) -> tuple[date, date, date]:
        """Tuesday before the clock change, Tuesday and Wednesday after it."""
        s = self.clock_change
        return s - timedelta(days=5), s + timedelta(days=2), s + timedelta(days=3)

    def local(self, day: date, clock: str) -> datetime:
        return datetime.combine(day, time.fromisoformat(clock), TZ)

    def stamp(self, day: date, clock: str, tz: ZoneInfo = TZ) -> str:
        moment = self.local(day, clock).astimezone(tz)
        return f"{moment:%Y%m%dT%H%M%S}"

    # --- what each teacher's calendar holds -------------------------------------------------

    def calendars(self) -> dict[str, list[str]]:
        d1, d2, d3 = self.days
        ny = "TZID=America/New_York"
        staff_start = d1 - timedelta(weeks=3)  # a Tuesday three weeks before, in EST
        return {
            ADA: [
                ics(
                    vevent(
                        "staff-meeting",
                        "SUMMARY:Staff meeting about Zanzibar budget",
                        f"DTSTART;{ny}:{self.stamp(staff_start, '16:30')}",
                        f"DTEND;{ny}:{self.stamp(staff_start, '17:30')}",
                        "RRULE:FREQ=WEEKLY;BYDAY=TU,WE",
                        f"EXDATE;{ny}:{self.stamp(d3, '16:30')}",
                    ),
                    vevent(
                        "staff-meeting",
                        "SUMMARY:Staff meeting about Zanzibar budget (moved)",
                        f"RECURRENCE-ID;{ny}:{self.stamp(d1, '16:30')}",
                        f"DTSTART;{ny}:{self.stamp(d1, '19:00')}",
                        f"DTEND;{ny}:{self.stamp(d1, '20:00')}",
                    ),
                )
            ],
            ALAN: [
                ics(
                    vevent(
                        "trip",
                        "SUMMARY:Trip to Xylophone conference",
                        f"DTSTART;VALUE=DATE:{d2:%Y%m%d}",
                        f"DTEND;VALUE=DATE:{d2 + timedelta(days=1):%Y%m%d}",
                    )
                )
            ],
            GRACE: [
                ics(
                    vevent(
                        "robotics",
                        "SUMMARY:Robotics Quokka club (maybe)",
                        "STATUS:TENTATIVE",
                        f"DTSTART;{ny}:{self.stamp(d1, '17:00')}",
                        f"DTEND;{ny}:{self.stamp(d1, '18:00')}",
                    )
                ),
                ics(
                    vevent(
                        "grading",
                        "SUMMARY:Grading Wombat essays",
                        "TRANSP:TRANSPARENT",
                        f"DTSTART;{ny}:{self.stamp(d2, '16:00')}",
                        f"DTEND;{ny}:{self.stamp(d2, '21:00')}",
                    )
                ),
                ics(
                    vevent(
                        "lab-review",
                        "SUMMARY:Lab Narwhal safety review",
                        "STATUS:CANCELLED",
                        f"DTSTART;{ny}:{self.stamp(d3, '18:00')}",
                        f"DTEND;{ny}:{self.stamp(d3, '19:00')}",
                    )
                ),
            ],
            ISAAC: [
                ics(
                    vevent(
                        "choir",
                        "SUMMARY:Choir Pelican rehearsal",
                        f"DTSTART:{self.stamp(d3, '16:00')}",
                        f"DTEND:{self.stamp(d3, '16:45')}",
                    )
                )
            ],
            MARIE: [
                ics(
                    VTIMEZONE_OUTLOOK_WEST_EUROPE,
                    vevent(
                        "call-lyon",
                        "SUMMARY:Call with Jellyfish lab in Lyon",
                        "DTSTART;TZID=W. Europe Standard Time:" + self.stamp(d2, "17:00", BERLIN),
                        "DTEND;TZID=W. Europe Standard Time:" + self.stamp(d2, "18:00", BERLIN),
                    ),
                ),
                ics(
                    vevent(
                        "outlook-no-vtimezone",
                        "SUMMARY:Walrus committee",
                        f'DTSTART;TZID="Eastern Standard Time":{self.stamp(d3, "20:00")}',
                        f'DTEND;TZID="Eastern Standard Time":{self.stamp(d3, "20:30")}',
                    )
                ),
            ],
        }

    @property
    def busy(self) -> dict[str, list[tuple[date, str, str]]]:
        """When each teacher is busy, in the school's local time: the expectation."""
        d1, d2, d3 = self.days
        return {
            ADA: [(d1, "19:00", "20:00"), (d2, "16:30", "17:30")],
            ALAN: [(d2, "00:00", "23:59")],
            GRACE: [(d1, "17:00", "18:00")],
            ISAAC: [(d3, "16:00", "16:45")],
            MARIE: [(d2, "17:00", "18:00"), (d3, "20:00", "20:30")],
        }

    @property
    def private_words(self) -> list[str]:
        """Words that must never appear in anything published."""
        titles = ["Zanzibar", "Xylophone", "Quokka", "Wombat", "Narwhal", "Pelican"]
        titles += ["Jellyfish", "Walrus", "Staff meeting", "Choir", "Robotics"]
        people = {name for f in FAMILIES for name in (f[1], f[3])}
        people |= {part for name in set(people) for part in name.split()}
        return titles + sorted(people) + sorted({f[2] for f in FAMILIES})

    # --- the period and the slots it should offer --------------------------------------------

    def windows(self) -> list[str]:
        return [f"{d}T{WINDOW[0]:%H:%M}/{WINDOW[1]:%H:%M}" for d in self.days]

    def period(self, **overrides: Any) -> dict[str, Any]:
        return {
            "id": PERIOD_ID,
            "title": PERIOD_TITLE,
            "slot_minutes": SLOT_MINUTES,
            "buffer_minutes": 0,
            "windows": self.windows(),
            **overrides,
        }

    def grid(self) -> list[tuple[datetime, datetime]]:
        slots = []
        for day in self.days:
            start = datetime.combine(day, WINDOW[0], TZ)
            end = datetime.combine(day, WINDOW[1], TZ)
            while start < end:
                slots.append((start, start + timedelta(minutes=SLOT_MINUTES)))
                start += timedelta(minutes=SLOT_MINUTES)
        return slots

    def is_busy(
        self, spans: Sequence[tuple[date, str, str]], start: datetime, end: datetime
    ) -> bool:
        return any(
            self.local(day, first) < end and start < self.local(day, last)
            for day, first, last in spans
        )

    def expected_slots(
        self,
        emails: Sequence[str] | None = None,
        busy: Mapping[str, Sequence[tuple[date, str, str]]] | None = None,
    ) -> list[dict[str, str]]:
        """The JSON objects `slots --format json` must print, ordered by name then time.

        ``busy`` replaces :attr:`busy` (a test that changed a calendar says what it expects).
        """
        spans = busy if busy is not None else self.busy
        chosen = sorted(emails or NAMES, key=lambda e: (NAMES[e], e))
        return [
            {
                "teacher": email,
                "teacher_key": teacher_key(email),
                "period": PERIOD_ID,
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
            for email in chosen
            for start, end in self.grid()
            if not self.is_busy(spans.get(email, ()), start, end)
        ]

    # --- the roster ------------------------------------------------------------------------

    def teachers_csv(self, calendars: Mapping[str, str], account: str = "district") -> str:
        lines = ["email,name,account,calendar,room"]
        lines += [
            f"{email},{NAMES[email]},{account},{calendars[email]},R{i}"
            for i, email in enumerate(sorted(calendars), 1)
        ]
        return "\n".join(lines) + "\n"

    def families_csv(self, teachers: Sequence[str] = tuple(NAMES)) -> str:
        lines = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
        lines += [
            f"{sid},{student},{g_email},{g_name},{teacher}"
            for sid, student, g_email, g_name, taught_by in FAMILIES
            for teacher in taught_by
            if teacher in teachers
        ]
        return "\n".join(lines) + "\n"


def seed_calendars(server: EmbeddedCalDAV, school: SampleSchool, tag: str) -> dict[str, str]:
    """One new calendar per teacher on ``server``, filled; returns email → calendar URL."""
    urls: dict[str, str] = {}
    for email, objects in school.calendars().items():
        url = make_calendar(server, f"{tag}-{email.split('@')[0].replace('.', '-')}")
        for text in objects:
            put_ics(server, url, text)
        urls[email] = url
    return urls


def account_table(
    server: EmbeddedCalDAV, account_id: str = "district", **overrides: Any
) -> dict[str, Any]:
    """An ``[[accounts]]`` table for ``server``; the password comes from the config file."""
    table: dict[str, Any] = {"id": account_id, "type": "caldav", "url": server.url}
    if server.password:
        table |= {"username": server.username, "password": server.password}
    return table | overrides


def write_school(
    folder: Path,
    school: SampleSchool,
    *,
    database_url: str = "sqlite:///ptm.db",
    accounts: Sequence[Mapping[str, Any]],
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    more_periods: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """The school's config file in ``folder``; returns its path."""
    return write_config(
        folder,
        config_text(
            school={"name": "Lincoln High School", "timezone": TZ.key, "contact": "o@l.org"},
            database_url=database_url,
            periods=[school.period(), *more_periods],
            accounts=accounts,
            sections=sections,
        ),
    )
