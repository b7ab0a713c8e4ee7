"""Configuration mistakes, `init` and `check`, as the person installing ptm-sync meets them.

A mistake the user can fix exits 1 with one line on stderr that names the key and the file,
never a traceback; a malformed command line exits 2 (DESIGN §7).
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import config_text, ptm_sync, stderr_lines, write_config
from tests.support.servers import free_port

SCHOOL = {"name": "Lincoln High School", "timezone": "America/New_York", "contact": "o@l.org"}
PERIOD = {"id": "spring", "title": "Spring conferences", "windows": ["2027-04-10T15:00/19:00"]}
GOOD = config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run (asserting that it is one, without traceback)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    return lines[0]


# --- one clear line per mistake -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mistake", "replace", "by", "names"),
    [
        ("unknown key", 'name = "Lincoln', 'colour = "red"\nname = "Lincoln', "school.colour"),
        ("unknown key in a period", 'id = "spring"', 'id = "spring"\nlength = 10', "periods[0]"),
        ("missing required key", 'contact = "o@l.org"\n', "", "school.contact"),
        ("bad time zone", "America/New_York", "America/Atlantis", "school.timezone"),
        ("window ends before it starts", "15:00/19:00", "19:00/15:00", "periods[0].windows[0]"),
        ("wrong type", 'title = "Spring conferences"', "title = 7", "periods[0].title"),
    ],
)
def test_a_config_mistake_exits_1_with_one_line_naming_the_key_and_the_file(
    tmp_path: Path, mistake: str, replace: str, by: str, names: str
) -> None:
    assert replace in GOOD, mistake
    config = write_config(tmp_path, GOOD.replace(replace, by, 1))
    line = one_line_error(ptm_sync(config, "slots"))
    assert names in line and str(config) in line, line


def test_an_unknown_key_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, GOOD.replace("[school]", '[school]\ncolour = "red"'))
    assert one_line_error(ptm_sync(config, "slots")) == (
        f"ptm-sync: {config}:2: school.colour: unknown key"
    )


def test_a_toml_syntax_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, GOOD.replace('title = "Spring conferences"', 'title = "Spr'))
    line = one_line_error(ptm_sync(config, "slots"))
    assert str(config) in line and "not valid TOML" in line and "line" in line


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ptm-sync.toml"
    line = one_line_error(ptm_sync(missing, "slots", cwd=tmp_path))
    assert str(missing) in line and "no such file" in line


def test_without_any_config_the_error_says_how_to_get_one(tmp_path: Path) -> None:
    line = one_line_error(ptm_sync(None, "slots", cwd=tmp_path))
    assert "--config" in line and "ptm-sync init" in line


def test_an_unknown_period_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, GOOD)
    line = one_line_error(ptm_sync(config, "slots", "--period", "autumn"))
    assert "autumn" in line and "spring" in line


def test_an_unset_password_env_stops_sync_naming_the_key_and_the_file(tmp_path: Path) -> None:
    account = {
        "id": "district",
        "type": "caldav",
        "url": f"http://127.0.0.1:{free_port()}/",
        "username": "ptm",
        "password_env": "PTM_TEST_UNSET_PASSWORD",
    }
    config = write_config(
        tmp_path,
        config_text(
            school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], accounts=[account]
        ),
    )
    (tmp_path / "teachers.csv").write_text(
        "email,name,account,calendar,room\n"
        "ann@l.org,Ann Lee,district,ann/,1\nbo@l.org,Bo Berg,district,bo/,2\n",
        encoding="utf-8",
    )
    assert ptm_sync(config, "roster", "import", "teachers.csv").returncode == 0
    result = ptm_sync(config, "sync")
    line = one_line_error(result)
    assert line == (
        f"ptm-sync: {config}: accounts[0].password_env: "
        "environment variable PTM_TEST_UNSET_PASSWORD is not set"
    )
    assert "FAILED" not in result.stdout  # not one failure per teacher: the config is wrong


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["slots", "--format", "xml"],
        ["matrix", "--format", "pdf"],
        ["roster", "import"],
        ["slots", "--period"],
        [],
    ],
    ids=[
        "unknown command",
        "bad slots format",
        "bad matrix format",
        "no files",
        "no value",
        "none",
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, argv: list[str]) -> None:
    config = write_config(tmp_path, GOOD)
    result = ptm_sync(config, *argv)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


# --- init -----------------------------------------------------------------------------------


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def test_init_writes_a_commented_config_and_creates_the_database(tmp_path: Path) -> None:
    folder = tmp_path / "school"
    folder.mkdir()
    result = ptm_sync(None, "init", folder, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = folder / "ptm-sync.toml"
    text = written.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#") and "[school]" in text and "[[periods]]" in text
    assert {"teachers", "meetings", "busy_times", "outbox"} <= tables(folder / "ptm-sync.db")
    # The written file is a valid configuration: a command that needs no server accepts it.
    assert ptm_sync(written, "slots", "--format", "json").returncode == 0

    again = ptm_sync(None, "init", folder, cwd=tmp_path)
    assert again.returncode == 0 and "keeping it" in again.stdout
    assert written.read_text(encoding="utf-8") == text


def test_init_creates_a_missing_folder(tmp_path: Path) -> None:
    """DESIGN §7: `init [DIR]` creates DIR if missing (mode 0700: tests/e2e/test_private_files)."""
    result = ptm_sync(None, "init", tmp_path / "missing", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "missing" / "ptm-sync.toml").is_file()


def test_init_with_another_config_is_a_usage_error_and_writes_nothing(tmp_path: Path) -> None:
    """`ptm-sync --config OTHER.toml init DIR` once wrote DIR's config, then failed on the
    missing OTHER.toml and left no database: now it refuses before writing anything."""
    folder = tmp_path / "school"
    refused = ptm_sync(tmp_path / "other.toml", "init", folder, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--config may only name" in refused.stderr and "Traceback" not in refused.stderr
    assert not folder.exists() and not (tmp_path / "other.toml").exists()

    # The README's alias names DIR/ptm-sync.toml itself: that is fine.
    named = ptm_sync(folder / "ptm-sync.toml", "init", folder, cwd=tmp_path)
    assert named.returncode == 0, named.stderr
    assert (folder / "ptm-sync.toml").is_file()
    assert {"teachers", "meetings"} <= tables(folder / "ptm-sync.db")


def test_init_into_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder\n", encoding="utf-8")
    line = one_line_error(ptm_sync(None, "init", tmp_path / "taken", cwd=tmp_path))
    assert "taken" in line


# --- check ----------------------------------------------------------------------------------


def radicale_config(
    tmp_path: Path, server: EmbeddedCalDAV, *extra_accounts: dict[str, str]
) -> Path:
    account = {
        "id": "district",
        "type": "caldav",
        "url": server.url,
        "username": server.username,
        "password_env": "PTM_TEST_CALDAV_PASSWORD",
    }
    return write_config(
        tmp_path,
        config_text(
            school=SCHOOL,
            database_url="sqlite:///ptm.db",
            periods=[PERIOD],
            accounts=[account, *extra_accounts],
        ),
    )


def test_check_passes_against_a_working_radicale_without_mail(
    tmp_path: Path, radicale_server: EmbeddedCalDAV
) -> None:
    config = radicale_config(tmp_path, radicale_server)
    config.chmod(0o600)  # else a warning says the config is readable by others
    result = ptm_sync(
        config, "check", env={"PTM_TEST_CALDAV_PASSWORD": radicale_server.password or ""}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Without [mail] invitations cannot go out: worth a note, not a failure.  A first run
    # made the database and has no roster yet: worth a warning each, not a failure.
    assert [line for line in lines if not line.startswith(("note: ", "warning: "))] == [
        "ok: configuration, database and every configured service answer"
    ]
    warned = [line.split(":")[1].strip() for line in lines if line.startswith("warning: ")]
    assert warned == ["database", "roster"], lines
    assert any(line.startswith("note: mail:") for line in lines)


def test_check_reports_a_wrong_password_and_a_server_that_is_down_one_line_each(
    tmp_path: Path, radicale_server: EmbeddedCalDAV
) -> None:
    down = {"id": "old-server", "type": "caldav", "url": f"http://127.0.0.1:{free_port()}/"}
    config = radicale_config(tmp_path, radicale_server, down)
    result = ptm_sync(config, "check", env={"PTM_TEST_CALDAV_PASSWORD": "wrong"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = [
        line for line in result.stdout.splitlines() if not line.startswith(("note: ", "warning: "))
    ]
    assert len(problems) == 2, problems
    wrong, unreachable = problems
    assert wrong.startswith("account district:") and "refused the user name or password" in wrong
    assert unreachable.startswith("account old-server:") and "cannot connect" in unreachable


def test_a_file_that_is_no_database_is_one_line_not_a_bug(tmp_path: Path) -> None:
    (tmp_path / "ptm.db").write_bytes(b"this is not an SQLite file\n" * 300)
    config = write_config(tmp_path, GOOD)
    line = one_line_error(ptm_sync(config, "meetings"))
    assert line == "ptm-sync: the database cannot be used: file is not a database"
    checked = ptm_sync(config, "check")
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert "database: file is not a database" in checked.stdout


def test_mail_deliver_without_mail_settings_defers_instead_of_losing_the_message(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, GOOD)  # no [mail]: nothing can be answered
    reply = b"From: pat@example.net\r\nMessage-ID: <1@example.net>\r\n\r\nhello\r\n"
    result = ptm_sync(config, "mail", "deliver", stdin=reply)
    assert result.returncode == 75, result.stderr
    assert "Traceback" not in result.stderr and "[mail] is missing" in result.stderr
    with sqlite3.connect(tmp_path / "ptm.db") as db:
        assert db.execute("SELECT count(*) FROM inbound").fetchone() == (0,)


def test_check_names_what_a_video_provider_lacks(tmp_path: Path) -> None:
    config = write_config(tmp_path, GOOD + '\n[video]\nprovider = "zoom"\n')
    checked = ptm_sync(config, "check")
    assert checked.returncode == 1, checked.stdout
    assert "video.zoom_account_id" in checked.stdout + checked.stderr
    assert "zoom links need the Zoom app's keys" in checked.stdout + checked.stderr


def test_a_database_path_that_finds_no_file_is_said_by_every_command(tmp_path: Path) -> None:
    config = write_config(tmp_path, GOOD.replace("sqlite:///ptm.db", "sqlite:///ptm-typo.db"))
    first = ptm_sync(config, "matrix")
    assert "ptm-typo.db did not exist: created it empty" in first.stderr
    assert "fix [database] url" in first.stderr
    again = ptm_sync(config, "matrix")  # the file exists now: said once, when it was made
    assert "did not exist" not in again.stderr
