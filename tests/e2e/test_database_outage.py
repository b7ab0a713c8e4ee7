"""A database that goes away mid-transaction is an outage, said in one line without
anybody's data (issue 7, item 4).

PostgreSQL is reached through :class:`~tests.support.cut_proxy.CutProxy`, which kills the
connection (a TCP reset) at the moment the client sends a chosen statement: the transaction
dies half done, the way a failover or ``pg_terminate_backend`` leaves it, at a point the
test chooses instead of one a timer happens to hit.  The URL carries a password (PostgreSQL
here trusts 127.0.0.1 and ignores it) so that a leaked URL would show.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from ptm_sync.adapters.store.db import database_outage
from ptm_sync.demo import parents
from ptm_sync.interfaces.cli.main import main
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cut_proxy import CutProxy
from tests.support.factories import make_invitation
from tests.support.mailservers import SmtpSink
from tests.support.school import FAMILIES, TZ, School, now_utc

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

PASSWORD = "pg-S3cret-not-to-print"
PAT_EMAIL, PAT_NAME = FAMILIES[0][2], FAMILIES[0][3]
#: What must never reach stderr or a log line.
PRIVATE = [PASSWORD, PAT_NAME, PAT_EMAIL, FAMILIES[0][1]]


class PgSchool:
    """The sample school on PostgreSQL, whose config can point through a cutting proxy."""

    def __init__(self, school: School, url: str) -> None:
        self.school = school
        self.url = make_url(url).set(password=PASSWORD)
        self.sqlite_line = 'url = "sqlite:///ptm.db"'
        self.template = school.config.read_text(encoding="utf-8")
        self.direct()

    def _point(self, port: int) -> None:
        url = self.url.set(port=port).render_as_string(hide_password=False)
        self.school.config.write_text(
            self.template.replace(self.sqlite_line, f'url = "{url}"'), encoding="utf-8"
        )

    def direct(self) -> None:
        self._point(self.url.port or 5432)

    @contextlib.contextmanager
    def cut(self, marker: bytes, skip: int = 0) -> Iterator[CutProxy]:
        upstream = (self.url.host or "127.0.0.1", self.url.port or 5432)
        with CutProxy(*upstream, marker=marker, skip=skip) as proxy:
            self._point(proxy.port)
            try:
                yield proxy
            finally:
                self.direct()


@pytest.fixture
def pg_school(
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    postgres_url: str,
) -> tuple[PgSchool, SmtpSink]:
    sink = smtp_sink(mode="plain")
    school = School(tmp_path, radicale_server, sink.port)
    school.write()
    pg = PgSchool(school, postgres_url)
    # School.setup() without its write(), which would point the config back at SQLite.
    roster = [str(tmp_path / "teachers.csv"), str(tmp_path / "families.csv")]
    school.run("roster", "import", *roster, fast=True)
    school.run("sync", fast=True)
    return pg, sink


def an_acceptance(school: School, sink: SmtpSink) -> tuple[dict[str, Any], bytes]:
    """Invite, and Pat's Thunderbird accepting Pat's first meeting: (the meeting, the reply)."""
    meeting, invitation = make_invitation(school, sink, guardian=PAT_EMAIL)
    reply = parents.reply("thunderbird", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert PAT_NAME.encode() in reply  # "From: Pat Johnson <pat@…>"
    return meeting, reply


def state_of(school: School, uid: str) -> tuple[str, int]:
    meeting = next(m for m in school.meetings() if m["uid"] == uid)
    return meeting["state"], meeting["sequence"]


def assert_one_private_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for word in PRIVATE:
        assert word not in err, (word, err)
    return lines[0]


def test_mail_deliver_with_the_connection_cut_mid_transaction_defers_in_one_clean_line(
    pg_school: tuple[PgSchool, SmtpSink],
) -> None:
    pg, sink = pg_school
    meeting, reply = an_acceptance(pg.school, sink)
    uid = meeting["uid"]
    # Cut when the statement carrying Pat's name (the raw reply) is sent: lookups done,
    # the transaction half way.
    with pg.cut(PAT_NAME.encode()) as proxy:
        result = pg.school.run("mail", "deliver", stdin=reply, check=False)
    assert proxy.cuts == 1
    assert result.code == 75, result.err  # EX_TEMPFAIL: the MTA keeps the message
    line = assert_one_private_line(result.err)
    assert "unavailable" in line and "deferred" in line, line
    assert "postgresql+psycopg://postgres:***@" in line, line  # which database, masked
    assert "SELECT" not in line and "INSERT" not in line and "[SQL" not in line
    # Nothing was kept; the MTA's retry is processed once and counts.
    assert state_of(pg.school, uid) == ("proposed", 0)
    assert pg.school.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    assert state_of(pg.school, uid) == ("confirmed", 1)


def test_other_commands_say_an_outage_in_one_line_and_change_nothing(
    pg_school: tuple[PgSchool, SmtpSink],
) -> None:
    pg, _ = pg_school
    assert pg.school.meetings() == []
    # A staff booking for Pat dies at the statement that names Pat's address.
    with pg.cut(PAT_EMAIL.encode()) as proxy:
        result = pg.school.run(
            "book",
            "--guardian",
            PAT_EMAIL,
            "--teacher",
            "ada@lincoln.example.org",
            "--start",
            f"{pg.school.day}T15:00",
            check=False,
        )
    assert proxy.cuts == 1
    assert result.code == 1, result.err  # DESIGN §7: only `mail deliver` exits 75
    line = assert_one_private_line(result.err)
    assert "unavailable" in line and "temporary" in line, line
    assert pg.school.meetings() == []


def test_every_cut_during_mail_deliver_defers_cleanly_and_the_retry_counts_once(
    pg_school: tuple[PgSchool, SmtpSink], caplog: pytest.LogCaptureFixture
) -> None:
    """Walk the cut through every chunk `mail deliver` sends to PostgreSQL: each run either
    defers (75) in one clean line or succeeds; delivered again until it goes through, the
    reply is applied exactly once, and no log line carries anybody's data."""
    pg, sink = pg_school
    meeting, reply = an_acceptance(pg.school, sink)
    uid = meeting["uid"]
    caplog.set_level(logging.DEBUG)
    deferred = succeeded = 0
    for position in range(200):
        with pg.cut(b"", skip=position) as proxy:
            code, err = run_here(pg.school, "mail", "deliver", stdin=reply)
        if proxy.cuts == 0:  # the cut came after the last chunk: the walk is over
            assert code == 0, err
            break
        if code == 75:
            deferred += 1
            assert_one_private_line(err)
        else:
            assert code == 0, err
            succeeded += 1
    else:
        raise AssertionError("mail deliver sent more than 200 chunks")
    assert deferred > 5  # the walk went through the transaction, not just the connect
    assert state_of(pg.school, uid) == ("confirmed", 1)
    # One confirmation queued for Pat, however often the reply came.
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            queued = conn.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE meeting_id = :m AND kind = 'email' "
                    "AND done_at IS NULL"
                ),
                {"m": meeting["id"]},
            ).scalar_one()
    finally:
        engine.dispose()
    assert queued == 1
    for word in PRIVATE:
        assert word not in our_log(caplog), word


def test_every_cut_during_outbox_flush_is_an_outage_not_a_failed_delivery(
    pg_school: tuple[PgSchool, SmtpSink], caplog: pytest.LogCaptureFixture
) -> None:
    """Walk the cut through every chunk `outbox flush` sends to PostgreSQL while it writes
    the teacher's calendar and mails the confirmation: each run ends in one clean line (or
    succeeds), and no outage is logged as a bug or counted as a failed attempt."""
    pg, sink = pg_school
    meeting, reply = an_acceptance(pg.school, sink)
    assert run_here(pg.school, "mail", "deliver", stdin=reply)[0] == 0
    before = len(sink.received)
    attempts_before = outbox_rows(pg, meeting["id"])
    caplog.set_level(logging.INFO)
    for position in range(300):
        with pg.cut(b"", skip=position) as proxy:
            code, err = run_here(pg.school, "outbox", "flush", stdin=b"")
        if proxy.cuts == 0:
            assert code == 0, err
            break
        assert code in (0, 1), err
        if code == 1:
            assert "unavailable" in assert_one_private_line(err)
        expire_leases(pg)  # as if the cut run's claims had run out (item 3 makes it prompt)
    else:
        raise AssertionError("outbox flush sent more than 300 chunks")
    bugs = [r for r in caplog.records if r.exc_info and r.name.startswith("ptm_sync")]
    assert bugs == [], [r.getMessage() for r in bugs]
    for word in PRIVATE:
        assert word not in our_log(caplog), word
    after = outbox_rows(pg, meeting["id"])
    # In the end everything is delivered, and no outage counted as a failed attempt: the
    # rows waiting before the walk went out at their first counted attempt, without error.
    assert all(state == "done" for _, state, _ in after.values()), after
    waiting = [row_id for row_id, (_, state, _) in attempts_before.items() if state != "done"]
    assert waiting and all(after[row_id][0::2] == (1, "") for row_id in waiting), after
    assert len(sink.received) > before  # the confirmation went out


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    """What ptm-sync and its libraries logged, messages and tracebacks (not the test's own
    SMTP sink, which logs the addresses it receives for)."""
    formatter = logging.Formatter()
    return "\n".join(
        formatter.format(r)
        for r in caplog.records
        if r.name.split(".")[0] in {"ptm_sync", "connectors", "sqlalchemy", "alembic", "root"}
    )


def expire_leases(pg: PgSchool) -> None:
    engine = create_engine(pg.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE outbox SET claimed_until = NULL"))
    finally:
        engine.dispose()


def outbox_rows(pg: PgSchool, meeting_id: int) -> dict[int, tuple[int, str, str]]:
    """The meeting's outbox rows: id -> (attempts, state, last_error)."""
    engine = create_engine(pg.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, attempts, state, last_error FROM outbox WHERE meeting_id = :m"),
                {"m": meeting_id},
            ).all()
    finally:
        engine.dispose()
    return {row_id: (attempts, state, error) for row_id, attempts, state, error in rows}


def run_here(school: School, *args: str, stdin: bytes) -> tuple[int, str]:
    """The command line in this process (a subprocess per cut would take minutes)."""
    err = io.StringIO()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["--config", str(school.config), *args])
    finally:
        sys.stdin = saved
    return code, err.getvalue()


# --- what counts as an outage ----------------------------------------------------------------


def test_sqlite_locked_after_the_busy_timeout_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(
        f"sqlite:///{path}", hide_parameters=True, connect_args={"timeout": 0.05}
    )
    try:
        with pytest.raises(OperationalError) as raised, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": PAT_NAME})
    finally:
        engine.dispose()
        holder.close()
    line = database_outage(raised.value)
    assert line is not None and "database is locked" in line
    assert PAT_NAME not in str(raised.value)  # hide_parameters


def test_a_wrong_statement_is_no_outage(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as raised, engine.begin() as conn:
            conn.execute(text("SELECT nothing FROM nowhere"))
    finally:
        engine.dispose()
    assert database_outage(raised.value) is None
