"""`report` and `report --unbooked` through the command line (DESIGN §7, issue 16 item 6), on
Radicale and aiosmtpd.

A school of five households books by staff: Pat meets Ada (held: completed) and Grace
(confirmed), Sam's meeting with Ada is marked a no-show, Maria's meeting with Alan is moved,
and the Browns' meeting with Ada (two guardians, one household) is cancelled.  The report
counts each teacher's meetings by their current state and the households that booked; the
school's row counts each household once; `--unbooked` names who still has to book.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import FAMILIES, TEACHERS, TZ, School

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (t[0] for t in TEACHERS)
PAT, SAM, MARIA = "pat@example.net", "sam@example.com", "maria@example.org"
CHRIS, ALEX = "chris.brown@example.org", "alex.brown@example.org"
#: Zoe Brown has two guardians and sees Ada (teacher 0): one household.
BROWNS = [
    ("S5", "Zoe Brown", CHRIS, "Chris Brown", [0]),
    ("S5", "Zoe Brown", ALEX, "Alex Brown", [0]),
]
#: DESIGN §7's report keys after ``period`` and ``teacher``, in the table's order.
KEYS = [
    "scheduled",
    "confirmed",
    "completed",
    "no_show",
    "rescheduled",
    "cancelled",
    "households",
    "households_booked",
]


def local(s: School, clock: str) -> str:
    """What a person types: the evening's date and a time, no offset."""
    return f"{s.day}T{clock}"


def moment(s: School, clock: str) -> datetime:
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def book(s: School, guardian: str, teacher: str, clock: str) -> int:
    done = s.run("book", "--guardian", guardian, "--teacher", teacher, "--start", local(s, clock))
    assert done.out.splitlines()[0].endswith(": confirmed"), done.out
    return int(done.out.split("meeting ", 1)[1].split()[0])


def run_at(s: School, clock: str, *args: str) -> str:
    """``ptm-sync ARGS`` with the commands' clock at ``clock`` on the evening."""
    done = ptm_sync(s.config, *args, env=at(moment(s, clock)))
    assert done.returncode == 0, done.stderr
    return done.stdout


def numbers(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(row[k] for k in KEYS)


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> School:
    """The evening after it happened (see the module's docstring)."""
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port, families=[*FAMILIES, *BROWNS])
    s.setup()
    held = book(s, PAT, ADA, "15:00")  # about Mia
    missed = book(s, SAM, ADA, "15:30")
    moved = book(s, MARIA, ALAN, "15:00")
    book(s, PAT, GRACE, "16:30")  # about Leo
    dropped = book(s, CHRIS, ADA, "16:00")
    s.run("reschedule", str(moved), "--start", local(s, "16:00"))
    s.run("cancel", str(dropped), "--reason", "the family asked")
    # Sam did not come; at 15:50 the meetings that ended are completed (Pat's with Ada).
    run_at(s, "15:40", "meetings", "mark", str(missed), "--no-show")
    run_at(s, "15:50", "jobs", "run", "complete")
    states = {m["id"]: m["state"] for m in s.meetings()}
    assert (states[held], states[missed], states[moved]) == ("completed", "no_show", "confirmed")
    return s


def test_the_report_counts_each_teachers_meetings_and_the_households_that_booked(
    school: School,
) -> None:
    rows = school.run("report", "--format", "json").json()

    assert all(list(r) == ["period", "teacher", *KEYS] for r in rows)
    by_teacher = {r["teacher"]: r for r in rows}
    assert [r["teacher"] for r in rows] == [ADA, ALAN, GRACE, None]
    assert {r["period"] for r in rows} == {"spring"}
    #                                 sched conf done no-show moved canc households booked
    assert numbers(by_teacher[ADA]) == (3, 0, 1, 1, 0, 1, 3, 1)  # Pat, Sam, the Browns
    assert numbers(by_teacher[ALAN]) == (1, 1, 0, 0, 1, 0, 2, 1)  # Mia's Pat, Maria
    assert numbers(by_teacher[GRACE]) == (1, 1, 0, 0, 0, 0, 2, 1)  # Leo's Pat, Maria
    # The whole school: meetings summed; Pat, Sam, Maria and the Browns once each (not the
    # 7 the teachers' rows add up to), Pat and Maria booked.
    assert numbers(by_teacher[None]) == (5, 2, 1, 1, 1, 1, 4, 2)


def test_the_report_as_a_table_and_as_csv(school: School) -> None:
    table = school.run("report").out.splitlines()
    assert table[0].split() == ["period", "teacher", *KEYS]
    assert table[-1].split() == ["spring", "(all)", "5", "2", "1", "1", "1", "1", "4", "2"]

    text = school.run("report", "--period", "spring", "--format", "csv").out
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["period", "teacher", *KEYS]
    assert lines[1] == ["spring", ADA, "3", "0", "1", "1", "0", "1", "3", "1"]
    assert lines[-1] == ["spring", "", "5", "2", "1", "1", "1", "1", "4", "2"]


def test_unbooked_names_the_households_still_to_book_with_each_teacher(school: School) -> None:
    rows = school.run("report", "--unbooked", "--format", "json").json()

    assert rows == [
        # Ada: the Browns' meeting was cancelled, Sam did not come (a no-show is no booking).
        {"period": "spring", "teacher": ADA, "students": ["S5"], "guardians": [ALEX, CHRIS]},
        {"period": "spring", "teacher": ADA, "students": ["S3"], "guardians": [SAM]},
        {"period": "spring", "teacher": ALAN, "students": ["S1"], "guardians": [PAT]},
        {"period": "spring", "teacher": GRACE, "students": ["S4"], "guardians": [MARIA]},
    ]
    table = school.run("report", "--unbooked").out.splitlines()
    assert table[0].split() == ["period", "teacher", "students", "guardians"]
    assert f"{ALEX},{CHRIS}" in table[2]


def test_an_unknown_period_is_an_error_naming_the_configured_ones(school: School) -> None:
    for args in (["report"], ["report", "--unbooked"], ["nudge"]):
        done = school.run(*args, "--period", "autumn", check=False)
        assert done.code == 1 and done.out == ""
        assert done.err.strip() == "ptm-sync: no period 'autumn' (configured: spring)"
    usage = school.run("report", "--format", "xml", check=False)
    assert usage.code == 2 and "invalid choice: 'xml'" in usage.err


def test_who_left_the_roster_is_no_household_but_their_meetings_stay_counted(
    school: School,
) -> None:
    school.families = [f for f in school.families if f[2] != SAM]
    school.write()
    files = [str(school.folder / "teachers.csv"), str(school.folder / "families.csv")]
    school.run("roster", "import", "--replace", *files)

    rows = {r["teacher"]: r for r in school.run("report", "--format", "json").json()}

    # Sam's missed meeting is still Ada's record; Sam is no household of hers any more.
    assert numbers(rows[ADA]) == (3, 0, 1, 1, 0, 1, 2, 1)
    assert numbers(rows[None]) == (5, 2, 1, 1, 1, 1, 3, 2)
    unbooked = school.run("report", "--unbooked", "--format", "json").json()
    assert SAM not in {g for r in unbooked for g in r["guardians"]}
