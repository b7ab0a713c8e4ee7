"""`roster import --replace [--force] [--dry-run]` (DESIGN §7; issue 16 item 8) on Radicale
and aiosmtpd: the files are the whole roster of the kinds they hold; who is missing is
retired, their open proposals withdrawn (a CANCEL to the family: the meeting's UID,
SEQUENCE + 1), their confirmed meetings kept and listed (`meetings --retired`, the staff
digest); more than half of the families needs --force; without --replace an import stays
additive; who comes back is brought back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Event

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.config import settings as config_mod
from ptm_sync.demo import organizers
from ptm_sync.interfaces.web.pages import Site
from tests.support.caldav_servers import EmbeddedCalDAV, delete_href
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    FAMILIES,
    TEACHERS,
    TZ,
    Family,
    School,
    calendar_part,
    parse,
    plain_body,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (t[0] for t in TEACHERS)
PAT, SAM, MARIA = "pat@example.net", "sam@example.com", "maria@example.org"


class AnySchool(School):
    """The test school on ``database`` ("" for its SQLite file)."""

    database: str = ""

    def write(self) -> None:
        super().write()
        if self.database:
            text = self.config.read_text()
            self.config.write_text(text.replace('"sqlite:///ptm.db"', f'"{self.database}"'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def school(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> tuple[School, SmtpSink]:
    """Maria has a confirmed meeting with Grace (booked by staff); `invite` proposed every
    other meeting (Maria's with Alan among them).  On SQLite and PostgreSQL."""
    sink = smtp_sink(mode="plain")
    s = AnySchool(tmp_path, radicale_server, sink.port)
    if request.param == "postgresql":
        s.database = str(request.getfixturevalue("postgres_url"))
    s.setup()
    s.run("book", "--guardian", MARIA, "--teacher", GRACE, "--start", f"{s.day}T15:30")
    s.run("invite")
    return s, sink


def families_file(s: School, name: str, families: list[Family]) -> Path:
    rows = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    for sid, student, g_email, g_name, teachers in families:
        rows += [f"{sid},{student},{g_email},{g_name},{TEACHERS[i][0]}" for i in teachers]
    path = s.folder / name
    path.write_text("\n".join(rows) + "\n")
    return path


def without(*guardians: str) -> list[Family]:
    return [f for f in FAMILIES if f[2] not in guardians]


def mine(s: School, guardian: str) -> dict[str, dict[str, Any]]:
    """The guardian's meetings by teacher."""
    return {m["teacher"]: m for m in s.meetings() if m["guardian"] == guardian}


def retired(s: School) -> list[dict[str, Any]]:
    """`meetings --retired --format json`."""
    found: list[dict[str, Any]] = s.run("meetings", "--retired", "--format", "json").json()
    return found


def cancels(sink: SmtpSink, since: int) -> list[tuple[str, Event, str]]:
    """(recipient, event, text) of each CANCEL received after the first ``since`` emails."""
    found = []
    for mail in sink.received[since:]:
        if not any(p.get_content_type() == "text/calendar" for p in parse(mail.raw).walk()):
            continue
        cal = calendar_part(mail.raw)
        if str(cal["METHOD"]) == "CANCEL":
            found.append((to_address(mail.raw), cal.events[0], plain_body(mail.raw)))
    return found


def test_replace_retires_the_missing_family_withdraws_its_proposal_and_keeps_its_meeting(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    teachers = s.folder / "teachers.csv"
    smaller = families_file(s, "families-2027.csv", without(MARIA))
    before = mine(s, MARIA)
    assert (before[ALAN]["state"], before[GRACE]["state"]) == ("proposed", "confirmed")
    sent = len(sink.received)

    # --dry-run: what would happen, and nothing happens.
    dry = s.run("roster", "import", "--replace", "--dry-run", str(teachers), str(smaller))
    assert dry.out.splitlines() == [
        "dry run: nothing was changed",
        "teachers: 3 (0 added, 0 updated)",
        "students: 3 (0 added, 0 updated)",
        "guardians: 2 (0 added, 0 updated)",
        "links: 4 (0 added, 2 removed)",
        "retired (would be): 0 teachers, 1 guardian, 1 student",
        f"  guardian {MARIA}",
        "  student S4",
        "1 open proposal would be withdrawn (a cancellation to each family)",
        "1 confirmed meeting of people who left the roster is kept: see "
        "`ptm-sync meetings --retired`",
    ]
    assert "Noah" not in dry.out and "Maria Garcia" not in dry.out  # ids and emails, no names
    assert mine(s, MARIA) == before and len(sink.received) == sent
    assert retired(s) == []

    done = s.run("roster", "import", "--replace", str(teachers), str(smaller))
    assert "retired: 0 teachers, 1 guardian, 1 student" in done.out
    assert "1 open proposal withdrawn (a cancellation to each family)" in done.out
    assert "delivered 1; 0 will be retried; 0 failed" in done.out
    after = mine(s, MARIA)
    assert after[ALAN]["state"] == "cancelled"
    assert after[ALAN]["sequence"] == before[ALAN]["sequence"] + 1
    assert after[GRACE] == before[GRACE]  # confirmed, kept as it was
    [(to, event, text)] = cancels(sink, sent)
    assert to == MARIA
    assert str(event["UID"]) == before[ALAN]["uid"]
    assert int(event["SEQUENCE"]) == before[ALAN]["sequence"] + 1
    assert "no longer on the school's roster" in text
    # The other families' meetings are untouched.
    assert {m["state"] for m in s.meetings() if m["guardian"] != MARIA} == {"proposed"}

    kept = retired(s)
    assert [(m["id"], m["state"], m["guardian"], m["retired"]) for m in kept] == [
        (before[GRACE]["id"], "confirmed", MARIA, "family")
    ]
    assert set(kept[0]) >= {"id", "uid", "period", "teacher", "guardian", "students", "start"}
    assert "family" in s.run("meetings", "--retired").out

    # The staff digest lists it (no family's name).
    digest = s.run("digest", "--dry-run").out
    assert f"meeting {before[GRACE]['id']} with {GRACE} at {s.day} 15:30: the family left" in (
        digest
    )
    assert "`ptm-sync meetings --retired` lists them" in digest and "Maria" not in digest

    # Maria is invited no more, by `invite` or a freed slot.
    sent = len(sink.received)
    s.run("invite")
    assert set(mine(s, MARIA)) == {ALAN, GRACE} and len(mine(s, MARIA)) == 2
    assert all(to_address(m.raw) != MARIA for m in sink.received[sent:])

    # She comes back in a later import: no longer retired.
    back = s.run("roster", "import", str(teachers), str(s.folder / "families.csv"))
    assert "guardians: 3 (0 added, 1 updated)" in back.out
    assert retired(s) == []


def test_retiring_more_than_half_of_the_families_needs_force(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    truncated = families_file(s, "export.csv", without(SAM, MARIA))  # Pat alone
    states = {m["id"]: m["state"] for m in s.meetings()}
    sent = len(sink.received)

    refused = s.run("roster", "import", "--replace", str(truncated), check=False)
    assert refused.code == 1 and refused.out == ""
    assert refused.err.strip() == (
        "ptm-sync: this import retires 2 of the 3 guardians in the roster (more than half of "
        "the families): if the files are the whole roster, run it again with --force; "
        "nothing was changed"
    )
    assert {m["id"]: m["state"] for m in s.meetings()} == states
    assert len(sink.received) == sent and retired(s) == []

    dry = s.run("roster", "import", "--replace", "--dry-run", str(truncated))
    assert "retired (would be): 0 teachers, 2 guardians, 2 students" in dry.out
    assert (
        "note: this retires 2 of the 3 guardians in the roster (more than half of the "
        "families): without --dry-run the import would need --force"
    ) in dry.err.splitlines()

    forced = s.run("roster", "import", "--replace", "--force", str(truncated))
    assert "retired: 0 teachers, 2 guardians, 2 students" in forced.out
    withdrawn = {to for to, _, _ in cancels(sink, sent)}
    assert withdrawn == {SAM, MARIA}
    assert {m["state"] for m in s.meetings() if m["guardian"] == PAT} == {"proposed"}
    assert {m["state"] for m in s.meetings() if m["guardian"] != PAT} == {
        "cancelled",
        "confirmed",
    }

    force_alone = s.run("roster", "import", "--force", str(truncated), check=False)
    assert force_alone.code == 2 and "--force goes with --replace" in force_alone.err


def test_a_teachers_file_holding_its_header_alone_needs_force(
    school: tuple[School, SmtpSink],
) -> None:
    """A truncated teachers export must not retire every teacher (the review's finding:
    all of them were retired, exit 0, and --dry-run gave no warning)."""
    s, sink = school
    header = s.folder / "teachers-header.csv"
    header.write_text("email,name,account,calendar,room\n")
    states = {m["id"]: m["state"] for m in s.meetings()}
    slots = s.run("slots", "--format", "json").json()
    assert {row["teacher"] for row in slots} == {ADA, ALAN, GRACE}
    sent = len(sink.received)

    dry = s.run("roster", "import", "--replace", "--dry-run", str(header))
    assert "retired (would be): 3 teachers, 0 guardians, 0 students" in dry.out
    assert (
        "note: this retires 3 of the 3 teachers in the roster (more than half of the "
        "teachers): without --dry-run the import would need --force"
    ) in dry.err.splitlines()

    refused = s.run("roster", "import", "--replace", str(header), check=False)
    assert (refused.code, refused.out) == (1, "")
    assert refused.err.strip() == (
        "ptm-sync: this import retires 3 of the 3 teachers in the roster (more than half of "
        "the teachers): if the files are the whole roster, run it again with --force; "
        "nothing was changed"
    )
    assert {m["id"]: m["state"] for m in s.meetings()} == states
    assert s.run("slots", "--format", "json").json() == slots
    assert len(sink.received) == sent and retired(s) == []

    # Two of three teachers leaving is more than half too; one of three is not.
    lines = (s.folder / "teachers.csv").read_text().splitlines()
    ada_only = s.folder / "teachers-ada.csv"
    ada_only.write_text("\n".join([lines[0], *(x for x in lines if ADA in x)]) + "\n")
    two = s.run("roster", "import", "--replace", str(ada_only), check=False)
    assert two.code == 1 and "retires 2 of the 3 teachers in the roster" in two.err

    forced = s.run("roster", "import", "--replace", "--force", str(header))
    assert "retired: 3 teachers, 0 guardians, 0 students" in forced.out
    assert s.run("slots", "--format", "json").json() == []


def test_a_families_file_with_new_student_ids_needs_force(
    school: tuple[School, SmtpSink],
) -> None:
    """Every guardian stays, but every student id changed (another export's ids): retiring
    more than half of the students needs --force, as for the families."""
    s, sink = school
    renumbered = [
        (f"X{sid}", student, g_email, g_name, teachers)
        for sid, student, g_email, g_name, teachers in FAMILIES
    ]
    path = families_file(s, "renumbered.csv", renumbered)
    states = {m["id"]: m["state"] for m in s.meetings()}
    sent = len(sink.received)

    dry = s.run("roster", "import", "--replace", "--dry-run", str(path))
    assert "retired (would be): 0 teachers, 0 guardians, 4 students" in dry.out
    assert (
        "note: this retires 4 of the 4 students in the roster (more than half of the "
        "students): without --dry-run the import would need --force"
    ) in dry.err.splitlines()
    refused = s.run("roster", "import", "--replace", str(path), check=False)
    assert refused.code == 1 and refused.err.strip() == (
        "ptm-sync: this import retires 4 of the 4 students in the roster (more than half of "
        "the students): if the files are the whole roster, run it again with --force; "
        "nothing was changed"
    )
    assert {m["id"]: m["state"] for m in s.meetings()} == states
    assert len(sink.received) == sent and retired(s) == []


def test_without_replace_an_import_stays_additive(school: tuple[School, SmtpSink]) -> None:
    s, sink = school
    pat_only = families_file(s, "pat.csv", without(SAM, MARIA))
    states = {m["id"]: m["state"] for m in s.meetings()}
    sent = len(sink.received)

    dry = s.run("roster", "import", "--dry-run", str(pat_only))
    assert dry.out.splitlines()[:2] == [
        "dry run: nothing was changed",
        "teachers: 0 (0 added, 0 updated)",
    ]
    done = s.run("roster", "import", str(pat_only))
    assert "retired" not in done.out
    assert done.out.splitlines()[-1] == "links: 3 (0 added, 0 removed)"
    assert {m["id"]: m["state"] for m in s.meetings()} == states
    assert len(sink.received) == sent and retired(s) == []


def test_a_teacher_missing_from_a_replacing_teachers_file_retires(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    lines = (s.folder / "teachers.csv").read_text().splitlines()
    two = s.folder / "teachers-2.csv"
    two.write_text("\n".join(line for line in lines if GRACE not in line) + "\n")
    graces = {m["guardian"]: m for m in s.meetings(teacher=GRACE)}
    assert {m["state"] for m in graces.values()} == {"proposed", "confirmed"}
    sent = len(sink.received)

    # A families file naming her with the teachers file that leaves her out: refused.
    both = s.run(
        "roster", "import", "--replace", str(two), str(s.folder / "families.csv"), check=False
    )
    assert both.code == 1 and "is not in the teachers files given" in both.err
    assert "families.csv:4" in both.err

    done = s.run("roster", "import", "--replace", str(two))
    assert "retired: 1 teacher, 0 guardians, 0 students" in done.out
    assert f"  teacher {GRACE}" in done.out
    [(to, event, text)] = cancels(sink, sent)
    assert (to, str(event["UID"])) == (PAT, graces[PAT]["uid"])
    assert "the teacher is no longer on the school's roster" in text
    kept = retired(s)
    assert [(m["guardian"], m["teacher"], m["retired"]) for m in kept] == [
        (MARIA, GRACE, "teacher")
    ]
    # A new family linked to her (an additive import may name a retired teacher) is
    # proposed its other teacher's meeting, not hers.
    kim = [("S9", "Kim Lee", "kim@example.org", "Kim Lee", [0, 2])]
    s.run("roster", "import", str(families_file(s, "kim.csv", kim)))
    s.run("invite")
    assert {t: m["state"] for t, m in mine(s, "kim@example.org").items()} == {ADA: "proposed"}


def test_who_left_the_roster_books_nothing_through_a_booking_address(
    school: tuple[School, SmtpSink],
) -> None:
    s, _ = school
    teachers = s.folder / "teachers.csv"
    s.run(
        "roster",
        "import",
        "--replace",
        str(teachers),
        str(families_file(s, "f.csv", without(MARIA))),
    )
    lines = teachers.read_text().splitlines()
    (s.folder / "t.csv").write_text("\n".join(x for x in lines if GRACE not in x) + "\n")
    s.run("roster", "import", "--replace", str(s.folder / "t.csv"))

    def ask(parent: str, teacher: str, clock: str) -> str:
        start = datetime.combine(s.day, time.fromisoformat(clock), TZ)
        booking = organizers.Booking(
            parent=parent,
            parent_name="A parent",
            booking_address=f"book+{teacher.split('@')[0]}@lincoln.example.org",
            start=start,
            end=start + timedelta(minutes=15),
        )
        raw = organizers.request("outlook", booking, tz=TZ, now=datetime.now(TZ))
        return s.run("mail", "deliver", stdin=raw).out.strip()

    assert ask(MARIA, ALAN, "16:45") == "quarantined (stranger)"
    assert ask(PAT, GRACE, "16:45") == (
        "applied (request declined: only the families of this teacher's students can book here)"
    )
    assert ask(PAT, ALAN, "16:45") == "applied (booked)"  # who stays books as before


def published(s: School, *paths: str) -> list[tuple[int, str]]:
    """(status, body) of each public page, served in this process as `run` serves them."""
    config = config_mod.load(str(s.config))
    db = Database(config.database.url)
    try:
        site = Site(config, db, lambda: datetime.now(TZ))
        answers = [site.handle(path) for path in paths]
    finally:
        db.dispose()
    return [(a.status, a.body.decode("utf-8", "replace")) for a in answers]


def test_a_retired_teacher_offers_no_times_and_who_left_is_booked_nothing(
    school: tuple[School, SmtpSink],
) -> None:
    s, _ = school
    lines = (s.folder / "teachers.csv").read_text().splitlines()
    without_grace = s.folder / "teachers-2.csv"
    without_grace.write_text("\n".join(x for x in lines if GRACE not in x) + "\n")
    kept = mine(s, MARIA)[GRACE]
    assert kept["state"] == "confirmed"
    assert GRACE in {row["teacher"] for row in s.run("slots", "--format", "json").json()}
    s.run("roster", "import", "--replace", str(without_grace))

    # Her free times are offered nowhere: slots, the matrix, the public page, its JSON and
    # her feed (404, as for a teacher nobody knows).
    slots = s.run("slots", "--format", "json").json()
    assert slots and {row["teacher"] for row in slots} == {ADA, ALAN}
    assert {row["teacher"] for row in s.run("matrix", "--format", "json").json()} == {ADA, ALAN}
    for command in ("slots", "matrix"):
        named = s.run(command, "--teacher", GRACE, check=False)
        assert (named.code, named.out) == (1, "")
        assert named.err.strip() == (
            f"ptm-sync: teacher '{GRACE}' left the roster (roster import --replace) and "
            "offers no times; import them again to offer them"
        )
    (page, html), (_, listing), (feed, _), (unknown, _), (ada_feed, _) = published(
        s,
        "/periods/spring",
        "/periods/spring/slots.json",
        "/periods/spring/teachers/grace.ics",
        "/periods/spring/teachers/nobody.ics",
        "/periods/spring/teachers/ada.ics",
    )
    assert page == 200 and "Grace Hopper" not in html and "Ada Lovelace" in html
    assert GRACE not in listing and ADA in listing
    assert (feed, unknown, ada_feed) == (404, 404, 200)

    # Staff book her nothing, nor move her kept meeting; her meetings are still listed.
    booked = s.run(
        "book", "--guardian", PAT, "--teacher", GRACE, "--start", f"{s.day}T16:00", check=False
    )
    assert (booked.code, booked.err.strip()) == (
        1,
        f"ptm-sync: teacher {GRACE} left the roster (roster import --replace); "
        "import them again to book",
    )
    moved = s.run("reschedule", str(kept["id"]), "--start", f"{s.day}T16:15", check=False)
    assert moved.code == 1 and f"teacher {GRACE} left the roster" in moved.err
    assert [m["id"] for m in s.meetings(teacher=GRACE) if m["state"] == "confirmed"] == [kept["id"]]

    # A guardian who left is booked nothing either, and their kept meeting is not moved.
    s.run(
        "roster",
        "import",
        "--replace",
        str(s.folder / "teachers.csv"),
        str(families_file(s, "f.csv", without(MARIA))),
    )
    assert GRACE in {row["teacher"] for row in s.run("slots", "--format", "json").json()}
    refused = s.run(
        "book", "--guardian", MARIA, "--teacher", ALAN, "--start", f"{s.day}T16:00", check=False
    )
    assert (refused.code, refused.err.strip()) == (
        1,
        f"ptm-sync: guardian {MARIA} left the roster (roster import --replace); "
        "import them again to book",
    )
    moved = s.run("reschedule", str(kept["id"]), "--start", f"{s.day}T16:15", check=False)
    assert moved.code == 1 and f"guardian {MARIA} left the roster" in moved.err
    assert mine(s, MARIA)[GRACE] == kept
    # Back on the roster, Grace is booked as before (at a time clear of Pat's proposals).
    s.run("book", "--guardian", PAT, "--teacher", GRACE, "--start", f"{s.day}T15:00")


def test_meetings_retired_or_conflicts_with_state_is_a_usage_error(
    school: tuple[School, SmtpSink],
) -> None:
    s, _ = school
    for args, named in (
        (["--retired", "--state", "cancelled"], "--state and --retired"),
        (["--retired", "--state", "confirmed"], "--state and --retired"),
        (["--retired", "--conflicts"], "--conflicts and --retired"),
        (["--conflicts", "--state", "proposed"], "--state and --conflicts"),
    ):
        done = s.run("meetings", *args, check=False)
        assert (done.code, done.out) == (2, ""), args
        assert f"error: {named} cannot be combined" in done.err
    helped = s.run("meetings", "--help").out
    assert "only meetings in this state: proposed, confirmed" in " ".join(helped.split())
    assert "no_show" in helped and "cancelled" in helped
    assert len(s.run("meetings", "--state", "proposed", "--format", "json").json()) > 1


def test_a_left_familys_meeting_deleted_by_the_teacher_is_cancelled_and_nothing_proposed(
    school: tuple[School, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    """Grace deletes Maria's kept meeting from her calendar after Maria's family left the
    roster: the meeting is cancelled (a CANCEL to Maria) and, unlike for a family that
    stays (DESIGN §3), no new time is proposed and nobody waits."""
    s, sink = school
    s.run("outbox", "flush")
    kept = mine(s, MARIA)[GRACE]
    s.run(
        "roster",
        "import",
        "--replace",
        str(s.folder / "teachers.csv"),
        str(families_file(s, "f.csv", without(MARIA))),
    )
    config = config_mod.load(str(s.config))
    db = Database(config.database.url)
    try:
        with db.read() as session:
            href = session.get(Meeting, kept["id"]).remote_href  # type: ignore[union-attr]
    finally:
        db.dispose()
    assert href
    sent = len(sink.received)
    delete_href(radicale_server, href)

    s.run("sync")
    s.run("outbox", "flush")

    assert mine(s, MARIA)[GRACE]["state"] == "cancelled"
    assert [m["state"] for m in s.meetings() if m["guardian"] == MARIA].count("proposed") == 0
    assert s.run("waitlist", "--format", "json").json() == []
    [(to, event, text)] = cancels(sink, sent)
    assert (to, str(event["UID"])) == (MARIA, kept["uid"])
    assert "invitation for another time" not in text and "waiting list" not in text
    requests = [
        m
        for m in sink.received[sent:]
        if any(p.get_content_type() == "text/calendar" for p in parse(m.raw).walk())
        and str(calendar_part(m.raw)["METHOD"]) == "REQUEST"
    ]
    assert requests == []
