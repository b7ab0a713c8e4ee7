"""Secrets and families' data stay private, and `check` says when they are not
(issue 7, items 4, 5 and 7).

* `init` creates the config and the SQLite database mode 0600 whatever the umask; SQLite's
  ``-wal``/``-shm`` files follow the database's mode.
* `check` warns (``warning:`` lines, exit 0) about a config, a ``*_file`` secret or a
  database that group or others may read, naming the ``chmod`` that fixes it, and about a
  mail login that would send its password without TLS.
* `check` never prints the password of a URL, in its lines or in its log.

The command line runs as a process here (``process=True``) wherever a mode or the log is
the point: the umask is the process's, and so is the log's set-up; the rest runs in this
process (:mod:`tests.support.cli`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ptm_sync.adapters.store import Database
from tests.support.cli import config_text, ptm_sync, write_config
from tests.support.mailservers import SMTP_PASSWORD, SMTP_USER, Mailbox, SmtpSink
from tests.support.school import imap_table
from tests.support.servers import free_port

SCHOOL = {"name": "Lincoln High School", "timezone": "America/New_York", "contact": "o@l.org"}
PERIOD = {"id": "spring", "title": "Spring conferences", "windows": ["2027-04-10T15:00/19:00"]}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set this process's umask (children inherit it); restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(saved)


# --- item 5: created private ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o002])
def test_init_creates_the_config_and_the_database_0600_whatever_the_umask(
    tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    folder = tmp_path / "school"
    folder.mkdir()
    umask(mask)
    result = ptm_sync(None, "init", folder, cwd=tmp_path, process=True)
    assert result.returncode == 0, result.stderr
    assert mode(folder / "ptm-sync.toml") == 0o600
    assert mode(folder / "ptm-sync.db") == 0o600
    for companion in ("ptm-sync.db-wal", "ptm-sync.db-shm"):
        if (folder / companion).exists():
            assert mode(folder / companion) == 0o600, companion


def test_init_creates_its_folders_0700_and_puts_the_database_in_the_state_dir(
    tmp_path: Path, umask: Callable[[int], None]
) -> None:
    folder, state = tmp_path / "etc" / "ptm-sync", tmp_path / "var" / "lib" / "ptm-sync"
    umask(0o000)
    result = ptm_sync(None, "init", folder, "--state-dir", state, cwd=tmp_path, process=True)
    assert result.returncode == 0, result.stderr
    assert (mode(folder), mode(state)) == (0o700, 0o700)
    assert (mode(folder / "ptm-sync.toml"), mode(state / "ptm-sync.db")) == (0o600, 0o600)
    assert not (folder / "ptm-sync.db").exists()
    # The written config finds the database there, and check finds nothing loose.
    checked = ptm_sync(folder / "ptm-sync.toml", "check", process=True)
    assert not [line for line in checked.stdout.splitlines() if "is mode" in line], checked.stdout
    assert f"database ready: sqlite:///{state / 'ptm-sync.db'}" in result.stdout


def test_sqlites_wal_and_shm_files_are_private_like_the_database(
    tmp_path: Path, umask: Callable[[int], None]
) -> None:
    umask(0o000)
    path = tmp_path / "ptm.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.migrate()
        with db.write_connection() as connection:  # the WAL and its index exist while open
            connection.execute(text("CREATE TABLE probe (x INTEGER)"))
        wal, shm = tmp_path / "ptm.db-wal", tmp_path / "ptm.db-shm"
        assert wal.exists() and shm.exists()
        assert (mode(path), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        db.dispose()


def test_an_existing_database_file_keeps_its_mode_and_check_names_it(tmp_path: Path) -> None:
    """ptm-sync never changes a mode the school chose; `check` says what to do."""
    config = write_config(
        tmp_path, config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])
    )
    config.chmod(0o600)
    database = tmp_path / "ptm.db"
    database.touch(mode=0o640)
    database.chmod(0o640)
    result = ptm_sync(config, "check", process=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert mode(database) == 0o640
    assert (
        f"warning: database {database} is mode 0640 (group or others have access); "
        f"run: chmod 600 {database}"
    ) in result.stdout.splitlines()


# --- items 5 and 7: check warns ---------------------------------------------------------------


def mail_config(tmp_path: Path, sink: SmtpSink, mailbox: Mailbox, **smtp: object) -> Path:
    secret = tmp_path / "smtp.pass"
    secret.write_text(SMTP_PASSWORD + "\n", encoding="utf-8")
    imap = mailbox.config()
    assert imap.password is not None
    sections = {
        "mail": {"organizer": "conferences@lincoln.example.org"},
        "mail.smtp": {
            "host": "127.0.0.1",
            "port": sink.port,
            "username": SMTP_USER,
            "password_file": str(secret),
            **smtp,
        },
        "mail.imap": imap_table(imap),
    }
    text_ = config_text(
        school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], sections=sections
    )
    return write_config(tmp_path, text_)


def test_check_warns_about_loose_files_and_cleartext_logins_and_still_passes(
    tmp_path: Path, smtp_sink: Callable[..., SmtpSink], mailbox: Mailbox
) -> None:
    sink = smtp_sink(mode="plain", auth=True)
    config = mail_config(tmp_path, sink, mailbox)
    secret, database = tmp_path / "smtp.pass", tmp_path / "ptm.db"
    ptm_sync(config, "check", process=True)  # creates the database (0600)
    for path in (config, secret, database):
        path.chmod(0o644)

    result = ptm_sync(config, "check", process=True)
    assert result.returncode == 0, result.stdout + result.stderr  # warnings only
    lines = result.stdout.splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    for what, path in (
        ("config", config),
        ("mail.smtp.password_file", secret),
        ("database", database),
    ):
        assert (
            f"warning: {what} {path} is mode 0644 (group or others have access); "
            f"run: chmod 600 {path}"
        ) in warnings, warnings
    smtp_line = next(w for w in warnings if w.startswith("warning: mail.smtp: "))
    imap_line = next(w for w in warnings if w.startswith("warning: mail.imap: "))
    assert "without TLS" in smtp_line and "starttls = true" in smtp_line
    assert "without TLS" in imap_line and "ssl = true" in imap_line
    assert lines[-1] == "ok: configuration, database and every configured service answer"
    assert SMTP_PASSWORD not in result.stdout + result.stderr

    for path in (config, secret, database):
        path.chmod(0o600)
    again = ptm_sync(config, "check", process=True)
    assert again.returncode == 0
    left = [line for line in again.stdout.splitlines() if line.startswith("warning: ")]
    # (no roster imported in this test: `check` says so too)
    assert [line.split(":")[1].strip() for line in left] == ["roster", "mail.smtp", "mail.imap"]


def test_check_does_not_warn_about_a_mail_server_without_login(
    tmp_path: Path, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    sections = {
        "mail": {"organizer": "conferences@lincoln.example.org"},
        "mail.smtp": {"host": "127.0.0.1", "port": sink.port},
    }
    config = write_config(
        tmp_path,
        config_text(
            school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], sections=sections
        ),
    )
    config.chmod(0o600)
    result = ptm_sync(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    # The only warnings: this first run made the database, and no roster is imported.
    warned = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert [line.split(":")[1].strip() for line in warned] == ["database", "roster"], warned


# --- item 4: no password printed ----------------------------------------------------------------


def test_check_never_prints_the_password_of_an_account_url(tmp_path: Path) -> None:
    port = free_port()  # nobody listens: check reports the account, naming its URL
    accounts = [
        {"id": "district", "type": "caldav", "url": f"http://ptm:Hunter2-secret@127.0.0.1:{port}/"},
        {
            "id": "events",
            "type": "caldav",
            "url": f"http://127.0.0.1:{port}/events.ics?token=Feed-secret-token&x=1",
        },
    ]
    config = write_config(
        tmp_path,
        config_text(
            school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], accounts=accounts
        ),
    )
    result = ptm_sync(config, "-vv", "check", process=True)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Hunter2-secret" not in output and "Feed-secret-token" not in output, output
    district = next(
        line for line in result.stdout.splitlines() if line.startswith("account district")
    )
    assert "ptm:***@127.0.0.1" in district, district


def test_sync_never_prints_the_password_of_an_account_url(tmp_path: Path) -> None:
    url = f"http://ptm:Hunter2-secret@127.0.0.1:{free_port()}/"  # nobody listens
    accounts = [{"id": "district", "type": "caldav", "url": url}]
    config = write_config(
        tmp_path,
        config_text(
            school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], accounts=accounts
        ),
    )
    teachers = tmp_path / "teachers.csv"
    teachers.write_text(
        "email,name,account,calendar,room\nada@l.org,Ada Lovelace,district,/ada/,101\n",
        encoding="utf-8",
    )
    assert ptm_sync(config, "roster", "import", teachers).returncode == 0
    result = ptm_sync(config, "-vv", "sync", process=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Hunter2-secret" not in result.stdout + result.stderr
    [failed] = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert "ptm:***@127.0.0.1" in failed, failed
