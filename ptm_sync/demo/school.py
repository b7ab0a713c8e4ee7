"""The demo's sample school: teachers with realistic calendars, families, a period.

Dates are relative to the day the demo runs, so the period is always in the near future.
Each teacher's calendar shows one thing a real calendar does that ptm-sync must get right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("America/New_York")
WINDOW_START, WINDOW_END = time(15, 0), time(19, 0)


@dataclass(frozen=True)
class DemoTeacher:
    email: str
    name: str
    room: str
    subject: str
    story: str  # what the demo shows with this teacher's calendar


TEACHERS = [
    DemoTeacher(
        "ada.lovelace@lincoln.example.org",
        "Ada Lovelace",
        "101",
        "Mathematics",
        "weekly staff meeting that began before the clocks changed: still 15:30",
    ),
    DemoTeacher(
        "alan.turing@lincoln.example.org",
        "Alan Turing",
        "102",
        "Computer science",
        "all-day absence on the second evening: the whole local day is busy",
    ),
    DemoTeacher(
        "grace.hopper@lincoln.example.org",
        "Grace Hopper",
        "103",
        "Physics",
        "a tentative event counts as busy",
    ),
    DemoTeacher(
        "carl.gauss@lincoln.example.org",
        "Carl Gauss",
        "104",
        "History",
        "daily tutoring with one day skipped and one moved earlier",
    ),
    DemoTeacher(
        "marie.curie@lincoln.example.org",
        "Marie Curie",
        "105",
        "Chemistry",
        "an Outlook event in 'W. Europe Standard Time'; a transparent and a "
        "cancelled event leave her free",
    ),
    DemoTeacher(
        "isaac.newton@lincoln.example.org",
        "Isaac Newton",
        "106",
        "Biology",
        "a floating-time event read in the school's zone",
    ),
]

# (student id, student name, guardian email, guardian name, teacher indexes)
FAMILIES = [
    ("S1001", "Mia Johnson", "pat.johnson@example.net", "Pat Johnson", [0, 2]),
    ("S1002", "Leo Johnson", "pat.johnson@example.net", "Pat Johnson", [1]),
    ("S1003", "Ava Smith", "sam.smith@example.com", "Sam Smith", [0, 3, 4]),
    ("S1004", "Noah Garcia", "maria.garcia@example.org", "Maria Garcia", [5, 2]),
    ("S1005", "Emma Brown", "chris.brown@example.net", "Chris Brown", [4]),
    ("S1005", "Emma Brown", "alex.brown@example.net", "Alex Brown", [4]),
    ("S1006", "Liam Davis", "jordan.davis@example.com", "Jordan Davis", [0, 1, 5]),
    ("S1007", "Zoe Wilson", "taylor.wilson@example.org", "Taylor Wilson", [3]),
]


#: Two families who join after the invitations went out: they book Grace Hopper (index 2)
#: through her booking address, both asking for the same time (the demo's race).
LATE_FAMILIES = [
    ("S1008", "Ines Okafor", "kofi.okafor@example.org", "Kofi Okafor", [2]),
    ("S1009", "Yuki Tanaka", "hana.tanaka@example.com", "Hana Tanaka", [2]),
]
#: Their mail clients.
LATE_CLIENTS = {"kofi.okafor@example.org": "gmail", "hana.tanaka@example.com": "outlook"}


def late_families_csv() -> str:
    lines = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    for sid, student, g_email, g_name, teachers in LATE_FAMILIES:
        lines += [f"{sid},{student},{g_email},{g_name},{TEACHERS[i].email}" for i in teachers]
    return "\n".join(lines) + "\n"


def evenings(today: date) -> tuple[date, date]:
    """The first Tuesday at least a week away, and the Wednesday after it."""
    first = today + timedelta(days=7)
    while first.weekday() != 1:
        first += timedelta(days=1)
    return first, first + timedelta(days=1)


def _stamp(d: date, t: time) -> str:
    return datetime.combine(d, t).strftime("%Y%m%dT%H%M%S")


def _cal(*events: str, extra: str = "") -> str:
    body = "".join(events)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//ptm-sync demo//EN\r\n"
        f"{extra}{body}END:VCALENDAR\r\n"
    )


def _event(uid: str, lines: str) -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{lines}END:VEVENT\r\n"


W_EUROPE = (
    "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n"
    "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)


def calendars(today: date) -> dict[str, list[str]]:
    """Each teacher's calendar objects (iCalendar text), keyed by email."""
    d1, d2 = evenings(today)
    ny = "TZID=America/New_York"
    # Ten weeks back: for most of the year this crosses a daylight-saving change.
    staff_start = d1 - timedelta(weeks=10)
    gauss_start = d1 - timedelta(days=20)
    berlin = datetime.combine(d1, time(17, 0), TZ).astimezone(ZoneInfo("Europe/Berlin"))
    return {
        TEACHERS[0].email: [
            _cal(
                _event(
                    "staff-meeting",
                    f"SUMMARY:Staff meeting\r\nDTSTART;{ny}:"
                    f"{_stamp(staff_start, time(15, 30))}\r\nDTEND;{ny}:"
                    f"{_stamp(staff_start, time(16, 30))}\r\nRRULE:FREQ=WEEKLY;BYDAY=TU\r\n",
                )
            ),
            _cal(
                _event(
                    "dentist",
                    f"SUMMARY:Dentist\r\nDTSTART;{ny}:{_stamp(d2, time(18, 0))}"
                    f"\r\nDTEND;{ny}:{_stamp(d2, time(19, 0))}\r\n",
                )
            ),
        ],
        TEACHERS[1].email: [
            _cal(
                _event(
                    "absence",
                    f"SUMMARY:Conference trip\r\nDTSTART;VALUE=DATE:"
                    f"{d2:%Y%m%d}\r\nDTEND;VALUE=DATE:{d2 + timedelta(days=1):%Y%m%d}\r\n",
                )
            ),
        ],
        TEACHERS[2].email: [
            _cal(
                _event(
                    "robotics",
                    f"SUMMARY:Robotics club (maybe)\r\nSTATUS:TENTATIVE\r\n"
                    f"DTSTART;{ny}:{_stamp(d1, time(17, 30))}\r\nDTEND;{ny}:"
                    f"{_stamp(d1, time(18, 30))}\r\n",
                )
            ),
        ],
        TEACHERS[3].email: [
            _cal(
                _event(
                    "tutoring",
                    f"SUMMARY:Tutoring\r\nDTSTART;{ny}:"
                    f"{_stamp(gauss_start, time(18, 0))}\r\nDTEND;{ny}:"
                    f"{_stamp(gauss_start, time(18, 30))}\r\nRRULE:FREQ=DAILY\r\n"
                    f"EXDATE;{ny}:{_stamp(d2, time(18, 0))}\r\n",
                ),
                _event(
                    "tutoring",
                    f"SUMMARY:Tutoring (moved)\r\nRECURRENCE-ID;{ny}:"
                    f"{_stamp(d1, time(18, 0))}\r\nDTSTART;{ny}:{_stamp(d1, time(16, 0))}"
                    f"\r\nDTEND;{ny}:{_stamp(d1, time(16, 30))}\r\n",
                ),
            ),
        ],
        TEACHERS[4].email: [
            _cal(
                _event(
                    "call-lyon",
                    "SUMMARY:Call with colleagues in Europe\r\n"
                    f"DTSTART;TZID=W. Europe Standard Time:{berlin:%Y%m%dT%H%M%S}\r\n"
                    f"DTEND;TZID=W. Europe Standard Time:"
                    f"{berlin + timedelta(hours=1):%Y%m%dT%H%M%S}\r\n",
                ),
                extra=W_EUROPE,
            ),
            _cal(
                _event(
                    "grading",
                    f"SUMMARY:Grade papers\r\nTRANSP:TRANSPARENT\r\n"
                    f"DTSTART;{ny}:{_stamp(d1, time(15, 0))}\r\nDTEND;{ny}:"
                    f"{_stamp(d1, time(19, 0))}\r\n",
                )
            ),
            _cal(
                _event(
                    "cancelled",
                    f"SUMMARY:Lab safety review\r\nSTATUS:CANCELLED\r\n"
                    f"DTSTART;{ny}:{_stamp(d2, time(16, 0))}\r\nDTEND;{ny}:"
                    f"{_stamp(d2, time(17, 0))}\r\n",
                )
            ),
        ],
        TEACHERS[5].email: [
            _cal(
                _event(
                    "floating",
                    f"SUMMARY:Choir\r\nDTSTART:{_stamp(d2, time(15, 0))}\r\n"
                    f"DTEND:{_stamp(d2, time(15, 45))}\r\n",
                )
            ),
        ],
    }


def teachers_csv(calendar_path: dict[str, str]) -> str:
    lines = ["email,name,account,calendar,room"]
    lines += [f"{t.email},{t.name},demo,{calendar_path[t.email]},{t.room}" for t in TEACHERS]
    return "\n".join(lines) + "\n"


def families_csv() -> str:
    lines = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    for sid, student, g_email, g_name, teachers in FAMILIES:
        lines += [f"{sid},{student},{g_email},{g_name},{TEACHERS[i].email}" for i in teachers]
    return "\n".join(lines) + "\n"


#: How each simulated guardian answers: (mail client, answers per meeting in plan order).
#: "accept" and "decline" become iTIP REPLYs shaped like that client's; "later" is Outlook's
#: "Propose new time" two hours later (a COUNTER); None stays silent.  Emma Brown's two
#: guardians both answer: Alex moves the meeting, then Chris declines, and Alex attends.
ANSWERS: dict[str, tuple[str, list[str | None]]] = {
    "pat.johnson@example.net": ("outlook", ["accept", "accept", "accept"]),
    "sam.smith@example.com": ("gmail", ["accept", "decline", "accept"]),
    "maria.garcia@example.org": ("apple", ["accept", "accept"]),
    "jordan.davis@example.com": ("thunderbird", ["accept", None, "accept"]),
    "alex.brown@example.net": ("outlook", ["later"]),
    "chris.brown@example.net": ("apple", ["decline"]),
    "taylor.wilson@example.org": ("proton", ["decline"]),
}


def config_toml(
    *, radicale_url: str, database: str, listen: str, today: date, smtp_port: int
) -> str:
    d1, d2 = evenings(today)
    span = f"{WINDOW_START:%H:%M}/{WINDOW_END:%H:%M}"
    return f"""# Written by `ptm-sync demo`.
[school]
name = "Lincoln High School (demo)"
timezone = "America/New_York"
contact = "office@lincoln.example.org"

[database]
url = "sqlite:///{database}"

[web]
listen = "{listen}"

[mail]
organizer = "conferences@lincoln.example.org"

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}

[video]
provider = "jitsi"
base_url = "https://meet.jit.si"

[[accounts]]
id = "demo"
type = "caldav"
url = "{radicale_url}"
username = "demo"
password = "demo"

[[periods]]
id = "demo"
title = "Parent-teacher conferences"
slot_minutes = 15
buffer_minutes = 0
gap_minutes = 5
windows = ["{d1}T{span}", "{d2}T{span}"]
"""
