"""The administrator's command line (DESIGN §7): options before or after the command, and
the staff digest by hand (`digest`, `digest --dry-run`).  The command line as typed (in this
process: :mod:`tests.support.cli`), a real SMTP sink, Radicale, SQLite."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ptm_sync.interfaces.cli.commands.booking import cmd_outbox_retry
from ptm_sync.interfaces.cli.commands.digest import cmd_digest
from ptm_sync.interfaces.cli.main import build_parser
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import CONTACT, School, to_address
from tests.unit.test_config_errors_collected import MANY_MISTAKES

pytestmark = pytest.mark.radicale


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["sync", "--config", "X", "-v"], 1),
        (["--config", "X", "sync"], 0),
        (["--config", "Y", "sync", "--config", "X"], 0),  # the later one wins
    ],
)
def test_global_options_stand_before_or_after_the_command(argv: list[str], verbose: int) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.config, args.verbose) == ("sync", "X", verbose)


def test_global_options_stand_after_a_nested_command() -> None:
    args = build_parser().parse_args(["outbox", "retry", "3", "--config", "X", "-v"])
    assert (args.func, args.id, args.config, args.verbose) == (cmd_outbox_retry, 3, "X", 1)
    args = build_parser().parse_args(["digest", "--dry-run", "--config", "X"])
    assert (args.func, args.dry_run, args.config) == (cmd_digest, True, "X")


def ptm_sync_after(school: School, *args: str) -> subprocess.CompletedProcess[str]:
    """``ptm-sync ARGS --config CONFIG``, the options last, from a folder without a config."""
    return ptm_sync(None, *args, "--config", school.config, cwd=school.folder.parent)


STRANGER_MAIL = (
    b"From: someone@elsewhere.example\r\nTo: conferences@lincoln.example.org\r\n"
    b"Subject: about my son\r\nMessage-ID: <x1@elsewhere.example>\r\n"
    b"Date: Mon, 22 Mar 2027 10:00:00 +0000\r\n\r\nCan we meet?\r\n"
)


def test_the_staff_digest_by_hand(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    (tmp_path / "school").mkdir()
    school = School(tmp_path / "school", radicale_server, sink.port)
    school.setup()
    quarantined = school.run("mail", "deliver", stdin=STRANGER_MAIL, fast=True)
    assert "quarantined" in quarantined.out

    dry = ptm_sync_after(school, "digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"To: {CONTACT}\nSubject: Lincoln High School: ptm-sync needs")
    assert "from someone@elsewhere.example" in dry.stdout and "about my son" not in dry.stdout
    assert dry.stdout.rstrip().endswith("(dry run: nothing sent)")
    assert sink.received == []

    sent = ptm_sync_after(school, "digest")
    assert sent.returncode == 0, sent.stderr
    assert f"staff digest queued for {CONTACT}" in sent.stdout
    assert [to_address(m.raw) for m in sink.received] == [CONTACT]

    again = school.run("digest", fast=True)
    assert again.out == "today's staff digest has run already; the next one is due tomorrow\n"
    assert len(sink.received) == 1

    unknown = ptm_sync_after(school, "outbox", "retry", "999")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "ptm-sync: no outbox row 999 (see `ptm-sync outbox`)\n",
    )


def test_every_config_mistake_at_once_exit_1_and_nothing_runs(tmp_path: Path) -> None:
    config = tmp_path / "ptm-sync.toml"
    config.write_text(
        MANY_MISTAKES.replace("[mail]", '[database]\nurl = "sqlite:///ptm.db"\n\n[mail]'),
        encoding="utf-8",
    )
    done = ptm_sync(None, "sync", "--config", config, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[0] == f"ptm-sync: {config}: 7 problems; nothing was done"
    assert all(re.match(rf"{re.escape(str(config))}:\d+: \S+: ", line) for line in lines[1:])
    assert len(lines) == 8 and "Traceback" not in done.stderr
    line = config.read_text().splitlines().index('password_evn = "PTM_DAV"') + 1
    expected = (
        f"{config}:{line}: accounts[0].password_evn: unknown key (did you mean password_env?)"
    )
    assert expected in lines
    assert not (tmp_path / "ptm.db").exists()  # nothing ran: no database made
