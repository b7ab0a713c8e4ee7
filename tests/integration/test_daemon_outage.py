"""The daemon meets a database outage: one log line, no traceback, and it keeps going
(issue 7, item 4).

The outages are real: SQLite locked by another connection past a short busy timeout, and a
PostgreSQL URL whose port refuses connections.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ptm_sync.app.context import App
from ptm_sync.config import settings as config_mod
from ptm_sync.interfaces.daemon import Daemon
from tests.support.cli import config_text
from tests.support.servers import free_port

SCHOOL = {"name": "Lincoln High School", "timezone": "America/New_York", "contact": "o@l.org"}
PERIOD = {"id": "spring", "title": "Spring conferences", "windows": ["2027-04-10T15:00/19:00"]}
PASSWORD = "Db-pass-not-to-log"


def app_for(tmp_path: Path, database_url: str, **sections: dict[str, object]) -> App:
    body = config_text(
        school=SCHOOL, database_url=database_url, periods=[PERIOD], sections=sections
    )
    path = tmp_path / "ptm-sync.toml"
    path.write_text(body, encoding="utf-8")
    return App(config_mod.load(str(path)))


def locked_sqlite(tmp_path: Path) -> None:
    """Raise the OperationalError a write meets when another process holds the lock."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "Pat Johnson"})
    finally:
        engine.dispose()
        holder.close()


def test_a_job_that_meets_an_outage_logs_one_line_and_a_bug_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(app_for(tmp_path, "sqlite:///ptm.db"))

    def outbox_job() -> None:
        locked_sqlite(tmp_path)

    def broken_job() -> None:
        raise ValueError("a bug")

    with caplog.at_level(logging.WARNING, logger="ptm_sync.interfaces.daemon"):
        daemon._guard(outbox_job)()  # never raises: the next run tries again
        daemon._guard(broken_job)()
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert "job outbox_job: " in outage.getMessage()
    assert "is unavailable: database is locked" in outage.getMessage()
    assert "Pat Johnson" not in caplog.text and "INSERT" not in outage.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None  # a bug keeps its trace


def test_the_imap_watcher_outlives_a_database_that_refuses_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://ptm:{PASSWORD}@127.0.0.1:{free_port()}/ptm"
    imap = {"host": "127.0.0.1", "port": free_port(), "ssl": False, "username": "u"}
    mail = {"organizer": "conferences@lincoln.example.org"}
    daemon = Daemon(app_for(tmp_path, url, mail=mail, **{"mail.imap": imap}))
    seen = threading.Event()

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "IMAP watcher" in record.getMessage():
                seen.set()

    spy = Spy()
    logging.getLogger("ptm_sync.interfaces.daemon").addHandler(spy)
    watcher = threading.Thread(target=daemon.mail_watcher, daemon=True)
    try:
        with caplog.at_level(logging.WARNING, logger="ptm_sync.interfaces.daemon"):
            watcher.start()
            assert seen.wait(timeout=60), caplog.text  # hang guard only
            assert watcher.is_alive()  # before: the thread died with the first failure
            daemon.stop()
            watcher.join(timeout=60)
    finally:
        daemon.stop()
        logging.getLogger("ptm_sync.interfaces.daemon").removeHandler(spy)
    assert not watcher.is_alive()
    [record, *_] = [r for r in caplog.records if "IMAP watcher" in r.getMessage()]
    assert record.exc_info is None and "is unavailable" in record.getMessage()
    assert "postgresql+psycopg://ptm:***@127.0.0.1" in record.getMessage()
    assert PASSWORD not in caplog.text
