"""From teachers' own CalDAV calendars to bookable slots, through the command line.

A school's IT person imports the roster, runs `sync`, and reads `slots` and `matrix`.  Every
test runs against Radicale and against Xandikos; the calendars hold what real ones do (see
``tests/support/sample_school.py``), and the expected free times are stated there in local time.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Guardian, Teacher
from tests.support.caldav_servers import EmbeddedCalDAV, delete_href, make_calendar, put_ics
from tests.support.calendar_data import ics, vevent
from tests.support.cli import ptm_sync
from tests.support.factories import make_meeting
from tests.support.sample_school import (
    ADA,
    ALAN,
    GRACE,
    NAMES,
    PERIOD_ID,
    TZ,
    SampleSchool,
    account_table,
    seed_calendars,
    teacher_key,
    write_school,
)
from tests.support.servers import free_port

SLOT_KEYS = {"teacher", "teacher_key", "period", "start", "end"}
MATRIX_KEYS = {"date", "start", "end", "teacher", "status"}


@dataclass(frozen=True)
class Synced:
    """A school whose roster is imported and whose calendars were synced once."""

    server: EmbeddedCalDAV
    school: SampleSchool
    folder: Path
    calendars: dict[str, str]
    first_sync: str

    @property
    def config(self) -> Path:
        return self.folder / "ptm-sync.toml"

    def copy(self, target: Path) -> Path:
        """A copy of the school's folder (config and database) for a test that changes it."""
        shutil.copytree(self.folder, target)
        return target / "ptm-sync.toml"


def set_up_school(server: EmbeddedCalDAV, folder: Path, school: SampleSchool) -> Synced:
    calendars = seed_calendars(server, school, tag=f"e2e-{uuid.uuid4().hex[:8]}")
    config = write_school(folder, school, accounts=[account_table(server)])
    (folder / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    (folder / "families.csv").write_text(school.families_csv(), encoding="utf-8")
    imported = ptm_sync(config, "roster", "import", "teachers.csv", "families.csv")
    assert imported.returncode == 0, imported.stderr
    synced = ptm_sync(config, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    return Synced(server, school, folder, calendars, synced.stdout)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("radicale", marks=pytest.mark.radicale),
        pytest.param("xandikos", marks=pytest.mark.xandikos),
    ],
)
def synced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synced:
    server: EmbeddedCalDAV = request.getfixturevalue(f"{request.param}_server")
    folder = tmp_path_factory.mktemp(f"school-{request.param}")
    return set_up_school(server, folder, SampleSchool(date.today()))


def slots_json(config: Path, *args: str) -> list[dict[str, str]]:
    result = ptm_sync(config, "slots", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, str]] = json.loads(result.stdout)
    return found


def calendar_path(url: str) -> str:
    return urlsplit(url).path


# --- the first sync and the slots it gives --------------------------------------------------


def test_the_first_sync_loads_every_calendar_in_full(synced: Synced) -> None:
    lines = synced.first_sync.splitlines()
    assert lines[-1] == "synced 5 of 5 calendars"
    objects = {email: len(texts) for email, texts in synced.school.calendars().items()}
    assert sorted(lines[:-1]) == sorted(
        f"{email}: full, {count} changed, 0 removed" for email, count in objects.items()
    )


def test_slots_are_exactly_the_free_times_of_real_calendars(synced: Synced) -> None:
    """DST-crossing recurrence with EXDATE and a moved instance, an all-day absence over
    the local day, tentative busy, transparent and cancelled free, Outlook zones, floating."""
    assert slots_json(synced.config) == synced.school.expected_slots()


def test_slot_objects_have_the_contract_keys_and_the_schools_utc_offset(synced: Synced) -> None:
    found = slots_json(synced.config, "--period", PERIOD_ID)
    assert found and all(set(row) == SLOT_KEYS for row in found)
    before = synced.school.days[0]
    for row in found:
        start, end = datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"])
        # Eastern time: -05:00 before the clock change, -04:00 after it.
        assert row["start"].endswith("-05:00" if start.date() == before else "-04:00"), row
        assert end - start == timedelta(minutes=30)
        assert start.utcoffset() == start.astimezone(TZ).utcoffset()
        assert row["teacher_key"] == teacher_key(row["teacher"]) and row["period"] == PERIOD_ID
    assert {datetime.fromisoformat(row["start"]).date() for row in found} == set(synced.school.days)


def test_slots_for_one_teacher(synced: Synced) -> None:
    assert slots_json(synced.config, "--teacher", ADA) == synced.school.expected_slots([ADA])
    # The email is matched as an address: case and spaces do not matter.
    assert slots_json(synced.config, "--teacher", f" {ADA.upper()} ") == (
        synced.school.expected_slots([ADA])
    )


def test_slots_for_a_teacher_not_in_the_roster_is_one_line(synced: Synced) -> None:
    result = ptm_sync(synced.config, "slots", "--teacher", "nobody@lincoln.example.org")
    assert result.returncode == 1 and "nobody@lincoln.example.org" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_slots_as_icalendar_list_the_same_slots(synced: Synced) -> None:
    result = ptm_sync(synced.config, "slots", "--format", "ics")
    assert result.returncode == 0, result.stderr
    calendar = Calendar.from_ical(result.stdout)
    events = calendar.walk("VEVENT")
    expected = synced.school.expected_slots()
    assert sorted((e.start.astimezone(UTC), e.end.astimezone(UTC)) for e in events) == sorted(
        (
            datetime.fromisoformat(row["start"]).astimezone(UTC),
            datetime.fromisoformat(row["end"]).astimezone(UTC),
        )
        for row in expected
    )
    assert len({str(e["UID"]) for e in events}) == len(events)
    # A feed of free times must not make its subscriber busy.
    assert all(str(e["TRANSP"]) == "TRANSPARENT" for e in events)
    assert {tz.tz_name for tz in calendar.timezones} == {"America/New_York"}


def test_slots_table_has_one_line_per_slot(synced: Synced) -> None:
    result = ptm_sync(synced.config, "slots", "--teacher", GRACE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["teacher", "teacher_key", "period", "start", "end"]
    assert len(lines) == 2 + len(synced.school.expected_slots([GRACE]))


# --- the matrix -----------------------------------------------------------------------------


def add_meetings(db_url: str, school: SampleSchool) -> dict[datetime, str]:
    """A proposed (held) and a confirmed (booked) meeting with Ada on the first evening;
    returns their local start times and the matrix status each must show."""
    day = school.days[0]
    meetings = {school.local(day, "16:00"): "held", school.local(day, "16:30"): "booked"}
    db = Database(db_url)
    now = datetime.now(UTC)
    with db.write() as session:
        teacher = session.scalars(select(Teacher).where(Teacher.email == ADA)).one()
        guardian = session.scalars(select(Guardian).order_by(Guardian.id)).first()
        assert guardian is not None
        for start, status in meetings.items():
            state = "proposed" if status == "held" else "confirmed"
            make_meeting(
                session,
                uid=f"test-{state}@ptm-sync",
                teacher=teacher,
                guardian=guardian,
                start=start.astimezone(UTC),
                minutes=30,
                state=state,
                period_id=PERIOD_ID,
                now=now,
            )
    db.dispose()
    return meetings


def expected_matrix(
    school: SampleSchool, meetings: dict[datetime, str] | None = None
) -> list[dict[str, str]]:
    """Every (slot, teacher) with its status; ``meetings`` are Ada's (see add_meetings)."""
    rows = []
    for start, end in school.grid():
        for email in sorted(NAMES, key=lambda e: NAMES[e]):
            if email == ADA and start in (meetings or {}):
                status = (meetings or {})[start]
            elif school.is_busy(school.busy[email], start, end):
                status = "busy"
            else:
                status = "available"
            rows.append(
                {
                    "date": start.date().isoformat(),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "teacher": email,
                    "status": status,
                }
            )
    return rows


def test_matrix_shows_available_busy_held_and_booked_in_every_format(
    synced: Synced, tmp_path: Path
) -> None:
    config = synced.copy(tmp_path / "school")
    meetings = add_meetings(f"sqlite:///{config.parent / 'ptm.db'}", synced.school)
    expected = expected_matrix(synced.school, meetings)

    as_json = ptm_sync(config, "matrix", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    found = json.loads(as_json.stdout)
    assert all(set(row) == MATRIX_KEYS for row in found)
    assert found == expected

    as_csv = ptm_sync(config, "matrix", "--period", PERIOD_ID, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    reader = csv.DictReader(io.StringIO(as_csv.stdout))
    assert reader.fieldnames == ["date", "start", "end", "teacher", "status"]
    assert list(reader) == expected

    as_html = ptm_sync(config, "matrix", "--format", "html")
    assert as_html.returncode == 0, as_html.stderr
    page = as_html.stdout
    assert page.startswith("<!doctype html>") and all(NAMES[e] in page for e in NAMES)
    for status in ("available", "busy", "held", "booked"):
        assert f'<td class="{status}">{status}</td>' in page

    table = ptm_sync(config, "matrix")
    assert table.returncode == 0, table.stderr
    counts = {s: sum(1 for row in expected if row["status"] == s) for s in ("available", "busy")}
    assert table.stdout.splitlines()[-1] == (
        f"{counts['available']} available, {counts['busy']} busy, 1 held, 1 booked"
    )
    # Held and booked slots are no longer offered.
    offered = {row["start"] for row in slots_json(config, "--teacher", ADA)}
    assert not {start.isoformat() for start in meetings} & offered
    assert len(offered) == len(synced.school.expected_slots([ADA])) - 2


# --- later passes ---------------------------------------------------------------------------


def test_an_idle_sync_makes_at_most_one_request_per_calendar(
    synced: Synced, tmp_path: Path
) -> None:
    config = synced.copy(tmp_path / "school")
    one = ptm_sync(config, "sync", "--teacher", ADA)
    assert one.stdout.splitlines() == [
        f"{ADA}: incremental, 0 changed, 0 removed",
        "synced 1 of 1 calendars",
    ]
    with synced.server.requests.recording() as log:
        result = ptm_sync(config, "sync")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(result.stdout.splitlines()[:-1]) == sorted(
        f"{email}: incremental, 0 changed, 0 removed" for email in NAMES
    )
    per_calendar = {
        email: [m for m, path in log if path.startswith(calendar_path(url))]
        for email, url in synced.calendars.items()
    }
    assert all(len(requests) <= 1 for requests in per_calendar.values()), per_calendar
    assert len(log) <= len(synced.calendars), log
    assert slots_json(config) == synced.school.expected_slots()


def grace_calendar(school: SampleSchool) -> tuple[str, str]:
    """Grace's tentative club on the first evening and a prep hour on the second."""
    d1, d2, _ = school.days
    robotics = ics(
        vevent(
            "robotics",
            "STATUS:TENTATIVE",
            f"DTSTART;TZID=America/New_York:{school.stamp(d1, '17:00')}",
            f"DTEND;TZID=America/New_York:{school.stamp(d1, '18:00')}",
        )
    )
    prep = ics(
        vevent(
            "prep",
            f"DTSTART;TZID=America/New_York:{school.stamp(d2, '19:00')}",
            f"DTEND;TZID=America/New_York:{school.stamp(d2, '20:00')}",
        )
    )
    return robotics, prep


@pytest.mark.parametrize("server_kind", ["radicale", "xandikos"])
def test_events_added_changed_and_deleted_on_the_server_show_up_after_the_next_sync(
    request: pytest.FixtureRequest, tmp_path: Path, server_kind: str
) -> None:
    server: EmbeddedCalDAV = request.getfixturevalue(f"{server_kind}_server")
    school = SampleSchool(date.today())
    d1, d2, d3 = school.days
    url = make_calendar(server, f"incremental-{uuid.uuid4().hex[:8]}")
    robotics, prep = grace_calendar(school)
    put_ics(server, url, robotics, "robotics.ics")
    prep_href = put_ics(server, url, prep, "prep.ics")
    config = write_school(tmp_path, school, accounts=[account_table(server)])
    (tmp_path / "teachers.csv").write_text(school.teachers_csv({GRACE: url}), encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv").returncode == 0
    first = ptm_sync(config, "sync")
    assert first.stdout.splitlines()[0] == f"{GRACE}: full, 2 changed, 0 removed"
    busy = [(d1, "17:00", "18:00"), (d2, "19:00", "20:00")]
    assert slots_json(config) == school.expected_slots([GRACE], {GRACE: busy})

    # The teacher moves the club, drops the prep hour and adds a parents' call.
    moved = robotics.replace(
        f"{school.stamp(d1, '17:00')}", f"{school.stamp(d1, '20:00')}"
    ).replace(f"{school.stamp(d1, '18:00')}", f"{school.stamp(d1, '21:00')}")
    put_ics(server, url, moved, "robotics.ics")
    delete_href(server, prep_href)
    call = ics(
        vevent(
            "call",
            f"DTSTART;TZID=America/New_York:{school.stamp(d3, '16:00')}",
            f"DTEND;TZID=America/New_York:{school.stamp(d3, '17:00')}",
        )
    )
    put_ics(server, url, call, "call.ics")

    second = ptm_sync(config, "sync")
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines()[0] == f"{GRACE}: incremental, 2 changed, 1 removed"
    busy = [(d1, "20:00", "21:00"), (d3, "16:00", "17:00")]
    assert slots_json(config) == school.expected_slots([GRACE], {GRACE: busy})


def test_a_calendar_server_that_is_down_fails_its_teachers_and_keeps_the_others(
    radicale_server: EmbeddedCalDAV, tmp_path: Path
) -> None:
    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"down-{uuid.uuid4().hex[:8]}")
    down = {"id": "old", "type": "caldav", "url": f"http://127.0.0.1:{free_port()}/dav/"}
    config = write_school(tmp_path, school, accounts=[account_table(radicale_server), down])
    roster = school.teachers_csv(calendars)
    # Alan's calendar lives on a server that is down (a path relative to its account URL).
    roster = roster.replace(
        f"{ALAN},Alan Turing,district,{calendars[ALAN]},", f"{ALAN},Alan Turing,old,alan/,"
    )
    assert "old,alan/" in roster
    (tmp_path / "teachers.csv").write_text(roster, encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv").returncode == 0

    result = ptm_sync(config, "sync")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith(f"{ALAN}: FAILED: ")
    assert "cannot reach the server" in failed[0]
    assert lines[-1] == "synced 4 of 5 calendars"
    others = [e for e in NAMES if e != ALAN]
    assert slots_json(config, "--teacher", ADA) == school.expected_slots([ADA])
    for email in others:
        assert f"{email}: full," in result.stdout


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_whole_flow_on_postgresql(
    radicale_server: EmbeddedCalDAV, postgres_url: str, tmp_path: Path
) -> None:
    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"pg-{uuid.uuid4().hex[:8]}")
    config = write_school(
        tmp_path, school, database_url=postgres_url, accounts=[account_table(radicale_server)]
    )
    (tmp_path / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    (tmp_path / "families.csv").write_text(school.families_csv(), encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv", "families.csv").returncode == 0
    first = ptm_sync(config, "sync")
    assert first.returncode == 0, first.stdout + first.stderr
    assert slots_json(config) == school.expected_slots()
    with radicale_server.requests.recording() as log:
        idle = ptm_sync(config, "sync")
    assert idle.returncode == 0 and len(log) <= len(calendars), log
    meetings = add_meetings(postgres_url, school)
    matrix = json.loads(ptm_sync(config, "matrix", "--format", "json").stdout)
    assert matrix == expected_matrix(school, meetings)
