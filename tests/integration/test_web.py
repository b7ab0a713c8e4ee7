"""The published pages (DESIGN §7) over real HTTP, from a database synced from Radicale.

What parents see: the periods, a page of teachers and their free times, a JSON list equal to
`slots --format json`, one iCalendar feed per teacher, and a health check.  Nothing served
may carry a guardian's or student's name or the title of a teacher's own event.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlalchemy import make_url, text

from ptm_sync.adapters.store import Database
from ptm_sync.config import settings as config_mod
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.server import WebServer
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import ptm_sync
from tests.support.cut_proxy import CutProxy
from tests.support.sample_school import (
    ADA,
    NAMES,
    PERIOD_ID,
    PERIOD_TITLE,
    TZ,
    SampleSchool,
    account_table,
    seed_calendars,
    teacher_key,
    write_school,
)

LATER = {"id": "autumn", "title": "Autumn check-in", "windows": ["2030-10-08T16:00/18:00"]}


@dataclass(frozen=True)
class Published:
    school: SampleSchool
    config: Path
    db: Database
    url: str
    now: datetime


def start_site(config: Path, db: Database, clock: Callable[[], datetime]) -> WebServer:
    server = WebServer(Site(config_mod.load(str(config)), db, clock), "127.0.0.1:0")
    server.start()
    return server


@pytest.fixture(scope="module")
def published(
    radicale_server: EmbeddedCalDAV, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    folder = tmp_path_factory.mktemp("web")
    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"web-{uuid.uuid4().hex[:8]}")
    config = write_school(
        folder, school, accounts=[account_table(radicale_server)], more_periods=[LATER]
    )
    (folder / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    (folder / "families.csv").write_text(school.families_csv(), encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv", "families.csv").returncode == 0
    assert ptm_sync(config, "sync").returncode == 0
    db = Database(config_mod.load(str(config)).database.url)
    now = datetime.now(UTC)  # the periods lie years ahead: the CLI's clock gives the same slots
    server = start_site(config, db, lambda: now)
    yield Published(school, config, db, server.url, now)
    server.stop()
    db.dispose()


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def fetch(base: str, path: str) -> Fetched:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return Fetched(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return Fetched(error.code, error.headers["Content-Type"], error.read())


class Sections(HTMLParser):
    """Teacher name (each <h3>) → the free times listed under it, each as "<day> <time>":
    the day of the <h4> heading above its list, the time of the <li>."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, list[str]] = {}
        self._open: list[str] = []
        self._current = ""
        self._day = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if "h3" in self._open:
            self._current = data.strip()
            self.times[self._current] = []
        elif "h4" in self._open:
            self._day = data.strip()
        elif self._open[-1:] == ["li"] and self._current and self._day:
            self.times[self._current].append(f"{self._day} {data.strip()}")


# --- the pages -------------------------------------------------------------------------------


def test_the_index_lists_every_period_with_a_link(published: Published) -> None:
    page = fetch(published.url, "/")
    assert page.status == 200 and page.content_type.startswith("text/html")
    assert f'<a href="/periods/{PERIOD_ID}">{PERIOD_TITLE}</a>' in page.text
    assert f'<a href="/periods/autumn">{LATER["title"]}</a>' in page.text


def test_the_period_page_lists_each_teacher_and_exactly_their_free_times(
    published: Published,
) -> None:
    page = fetch(published.url, f"/periods/{PERIOD_ID}")
    assert page.status == 200 and page.content_type == "text/html; charset=utf-8"
    parser = Sections()
    parser.feed(page.text)
    expected = {}
    for email, name in NAMES.items():
        rows = published.school.expected_slots([email])
        starts = [datetime.fromisoformat(r["start"]) for r in rows]
        ends = [datetime.fromisoformat(r["end"]) for r in rows]
        expected[name] = [
            f"{s:%A %d %B} {s:%H:%M}–{e:%H:%M}" for s, e in zip(starts, ends, strict=True)
        ]
    assert parser.times == expected
    for email in NAMES:
        assert f'href="/periods/{PERIOD_ID}/teachers/{teacher_key(email)}.ics"' in page.text


def test_slots_json_is_byte_for_byte_the_command_lines_json(published: Published) -> None:
    served = fetch(published.url, f"/periods/{PERIOD_ID}/slots.json")
    assert served.status == 200 and served.content_type == "application/json"
    cli = ptm_sync(published.config, "slots", "--period", PERIOD_ID, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert served.body == cli.stdout.encode("utf-8")
    assert json.loads(served.body) == published.school.expected_slots()


def test_slots_json_leaves_out_slots_that_began_before_now(published: Published) -> None:
    second_evening = published.school.local(published.school.days[1], "18:00")
    late = start_site(published.config, published.db, lambda: second_evening)
    try:
        served = json.loads(fetch(late.url, f"/periods/{PERIOD_ID}/slots.json").body)
    finally:
        late.stop()
    expected = [
        row
        for row in published.school.expected_slots()
        if datetime.fromisoformat(row["start"]) >= second_evening
    ]
    assert served == expected and len(expected) < len(published.school.expected_slots())


def test_a_teachers_feed_holds_only_that_teachers_slots(published: Published) -> None:
    feed = fetch(published.url, f"/periods/{PERIOD_ID}/teachers/{teacher_key(ADA)}.ics")
    assert feed.status == 200 and feed.content_type == "text/calendar; charset=utf-8"
    events = Calendar.from_ical(feed.body).walk("VEVENT")
    assert [(e.start, e.end) for e in events] == [
        (datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"]))
        for r in published.school.expected_slots([ADA])
    ]
    assert all(e.start.tzinfo is not None and e.start.astimezone(TZ) == e.start for e in events)
    assert {str(e["SUMMARY"]) for e in events} == {f"Bookable: {NAMES[ADA]}"}


def test_health_answers_200_with_a_json_status(published: Published) -> None:
    health = fetch(published.url, "/healthz")
    assert health.status == 200 and health.content_type == "application/json"
    status = json.loads(health.body)
    assert status["status"] == "ok" and status["database"] == "ok"
    assert status["teachers"] == len(NAMES) and status["last_sync"]


def test_health_answers_503_when_the_database_does_not(
    published: Published, tmp_path: Path
) -> None:
    (tmp_path / "db").mkdir()
    gone = Database(f"sqlite:///{tmp_path / 'db' / 'ptm.db'}")
    (tmp_path / "db").rmdir()  # the disk went away under the running service
    site = Site(config_mod.load(str(published.config)), gone, lambda: published.now)
    health = site.handle("/healthz")
    assert health.status == 503
    assert json.loads(health.body) == {
        "status": "degraded",
        "problems": ["database unavailable: cannot reach the database"],
        "database": "unavailable",
    }
    gone.dispose()


# --- a database outage -----------------------------------------------------------------------

#: PostgreSQL on a port nobody listens on: refused at once, as when the server is down.
REFUSING = "postgresql+psycopg://u:secret@127.0.0.1:1/x"


@pytest.fixture
def outage_site(published: Published) -> Iterator[str]:
    """The site served over HTTP in front of a database that refuses every connection."""
    gone = Database(REFUSING)
    server = start_site(published.config, gone, lambda: published.now)
    yield server.url
    server.stop()
    gone.dispose()


def logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("ptm_sync") and r.levelno >= logging.INFO
    ]


@pytest.mark.parametrize(
    "path",
    [
        f"/periods/{PERIOD_ID}",
        f"/periods/{PERIOD_ID}/slots.json",
        f"/periods/{PERIOD_ID}/teachers/{teacher_key(ADA)}.ics",
    ],
)
def test_pages_answer_503_and_log_one_line_while_the_database_is_away(
    outage_site: str, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    page = fetch(outage_site, path)
    assert page.status == 503 and page.content_type == "text/plain; charset=utf-8"
    assert page.text == "Temporarily unavailable, try again later.\n"
    records = logged(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    line = record.getMessage()
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "\n" not in line and "Traceback" not in line
    assert "secret" not in line and "SELECT" not in line.upper()
    assert path in line and "u:***@127.0.0.1:1/x is unavailable" in line
    assert "secret" not in caplog.text and "Traceback" not in caplog.text


def test_head_answers_503_with_retry_after_while_the_database_is_away(outage_site: str) -> None:
    request = urllib.request.Request(outage_site + f"/periods/{PERIOD_ID}", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 503 and error.value.headers["Retry-After"] == "30"
    assert error.value.read() == b""


def test_health_names_the_unavailable_database_in_words(
    outage_site: str, caplog: pytest.LogCaptureFixture
) -> None:
    health = fetch(outage_site, "/healthz")
    assert health.status == 503 and health.content_type == "application/json"
    status = json.loads(health.body)
    assert status["status"] == "degraded" and status["database"] == "unavailable"
    assert status["problems"] == ["database unavailable: cannot reach the database"]
    assert "secret" not in health.text
    assert all(r.exc_info is None for r in logged(caplog))
    assert "secret" not in caplog.text and "Traceback" not in caplog.text


def test_pages_that_need_no_database_still_answer_during_an_outage(outage_site: str) -> None:
    assert fetch(outage_site, "/").status == 200
    assert fetch(outage_site, "/periods/winter").status == 404


def test_a_bug_is_still_a_500_with_its_traceback_in_the_log(
    published: Published, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Site, period_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Site, "period_page", broken)
    server = start_site(published.config, published.db, lambda: published.now)
    try:
        page = fetch(server.url, f"/periods/{PERIOD_ID}")
    finally:
        server.stop()
    assert page.status == 500
    errors = [r for r in logged(caplog) if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert errors[0].exc_info[0] is RuntimeError


@pytest.mark.parametrize(
    "path",
    [
        "/periods/winter",
        "/periods/winter/slots.json",
        f"/periods/winter/teachers/{teacher_key(ADA)}.ics",
        f"/periods/{PERIOD_ID}/teachers/nobody.ics",
        "/admin",
        "/periods/",
    ],
)
def test_unknown_periods_teachers_and_paths_are_404(published: Published, path: str) -> None:
    assert fetch(published.url, path).status == 404


def test_head_sends_the_headers_of_get_and_no_body(published: Published) -> None:
    host, port = published.url.removeprefix("http://").split(":")
    get = fetch(published.url, f"/periods/{PERIOD_ID}")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"HEAD /periods/{PERIOD_ID} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    # A server answers with its own HTTP/1.x version (RFC 9110 §2.5); names are any case.
    assert head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    assert f"content-length: {len(get.body)}".encode() in head.lower()
    assert body == b""


# --- privacy ---------------------------------------------------------------------------------


def every_published_path(published: Published) -> list[str]:
    paths = ["/", "/healthz", "/periods/autumn", "/periods/nope", "/periods/autumn/slots.json"]
    for period in (PERIOD_ID, "autumn"):
        paths += [f"/periods/{period}", f"/periods/{period}/slots.json"]
        paths += [f"/periods/{period}/teachers/{teacher_key(email)}.ics" for email in NAMES]
    return paths


def test_no_guardian_student_or_event_title_appears_on_any_published_response(
    published: Published,
) -> None:
    bodies = {path: fetch(published.url, path).text for path in every_published_path(published)}
    assert all(bodies.values())
    words = published.school.private_words
    leaks = {
        path: [word for word in words if word.lower() in body.lower()]
        for path, body in bodies.items()
    }
    assert not {path: found for path, found in leaks.items() if found}
    # The words are in the store, so their absence above means something.
    with published.db.read() as session:
        stored = " ".join(
            str(v) for row in session.execute(text("SELECT ics FROM calendar_events")) for v in row
        )
        stored += " ".join(
            str(v)
            for row in session.execute(text("SELECT name, email FROM guardians"))
            for v in row
        )
    assert "Zanzibar" in stored and "Philippa Quigglesworth" in stored


def test_a_postgresql_connection_cut_mid_page_is_a_503_in_one_clean_line(
    published: Published, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL goes away under the running site: the connection is reset while the
    period page reads the teachers (tests.support.cut_proxy)."""
    direct = Database(postgres_url)
    direct.migrate()
    direct.dispose()
    url = make_url(postgres_url).set(password="secret")
    upstream = (url.host or "127.0.0.1", url.port or 5432)
    with CutProxy(*upstream, marker=b"FROM teachers", skip=1) as proxy:
        db = Database(url.set(port=proxy.port).render_as_string(hide_password=False))
        server = start_site(published.config, db, lambda: published.now)
        try:
            # Works: its queries are not cut (an empty roster is its only complaint).
            assert '"database": "ok"' in fetch(server.url, "/healthz").text
            caplog.clear()
            caplog.set_level(logging.DEBUG)
            page = fetch(server.url, f"/periods/{PERIOD_ID}")
        finally:
            server.stop()
            db.dispose()
    assert proxy.cuts >= 1
    assert page.status == 503 and "temporarily unavailable" in page.text.lower()
    [record] = logged(caplog)
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert "is unavailable" in record.getMessage()
    assert "secret" not in caplog.text and "Traceback" not in caplog.text
    assert "SELECT" not in caplog.text.upper() and "teachers." not in caplog.text
