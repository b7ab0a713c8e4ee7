"""The test suite's in-process command line (:func:`tests.support.cli.run_here`) answers as
``python -m ptm_sync`` does, and leaves this process as it found it.

Most command-line tests call the entry point in the test's own process; these tests hold
that shortcut to the real thing: the same exit code, stdout and stderr (log lines included,
their time stamps aside) as a fresh interpreter for usage errors, ``--version``, a config
mistake and a command that logs a warning, and nothing of the run left behind (environment,
working folder, logging, standard streams, signal handlers).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.support.cli import PROCESS_ONLY_ENV, config_text, ptm_sync, write_config

SCHOOL = {"name": "Lincoln High School", "timezone": "America/New_York", "contact": "o@l.org"}
PERIOD = {"id": "spring", "title": "Spring conferences", "windows": ["2027-04-10T15:00/19:00"]}
#: The time stamp that starts a text log line.
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.MULTILINE)


def both(
    config: Path | None, *args: str | Path, cwd: Path | None = None
) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr without log time stamps) in this process, then in a new one."""
    return [
        (done.returncode, done.stdout, STAMP.sub("", done.stderr))
        for done in (
            ptm_sync(config, *args, cwd=cwd),
            ptm_sync(config, *args, cwd=cwd, process=True),
        )
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("--version",),
        ("--log-format", "xml", "check"),  # a usage error: exit 2, usage on stderr
        ("no-such-command",),
        ("slots", "--format", "yaml"),
    ],
    ids=["version", "bad-option-value", "unknown-command", "bad-sub-option"],
)
def test_usage_and_version_are_as_a_process_gives_them(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    here, there = both(None, *args, cwd=tmp_path)
    assert here == there
    assert here[0] in (0, 2)


def test_a_config_mistake_is_as_a_process_gives_it(tmp_path: Path) -> None:
    text = config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])
    config = write_config(tmp_path, text.replace("America/New_York", "America/Atlantis"))
    here, there = both(config, "slots")
    assert here == there
    assert here[0] == 1 and "school.timezone" in here[2]


def test_a_commands_log_lines_reach_its_stderr_as_in_a_process(tmp_path: Path) -> None:
    """The database did not exist: every command warns (a log line) and goes on."""
    first, second = tmp_path / "first", tmp_path / "second"
    results = []
    for folder, process in ((first, False), (second, True)):
        folder.mkdir()
        text = config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])
        done = ptm_sync(write_config(folder, text), "-v", "slots", process=process)
        results.append(
            (done.returncode, done.stdout, STAMP.sub("", done.stderr).replace(str(folder), "X"))
        )
    here, there = results
    assert here == there
    assert "WARNING ptm_sync.app.context: database: X/ptm.db did not exist" in here[2]


def test_a_run_leaves_this_process_as_it_was(tmp_path: Path) -> None:
    environment, folder = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    streams = sys.stdin, sys.stdout, sys.stderr
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    text = config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])
    config = write_config(tmp_path, text)

    done = ptm_sync(config, "-vv", "slots", env={"PTM_TEST_ONLY_FOR_THIS_RUN": "1"}, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "DEBUG" in done.stderr  # -vv set the command's own logging up
    assert dict(os.environ) == environment and os.getcwd() == folder
    assert (root.handlers, root.level) == (handlers, level)
    assert (sys.stdin, sys.stdout, sys.stderr) == streams
    assert {s: signal.getsignal(s) for s in signals} == signals


def test_the_config_a_test_names_is_the_only_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PTM_SYNC_CONFIG`` of the test run never reaches the command, as with a process."""
    text = config_text(school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD])
    monkeypatch.setenv("PTM_SYNC_CONFIG", str(write_config(tmp_path, text)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    here, there = both(None, "slots", cwd=elsewhere)
    assert here == there
    assert here[0] == 1 and "no configuration found" in here[2]


def test_what_an_interpreter_reads_at_start_gets_a_process(tmp_path: Path) -> None:
    """``PTM_CRASH_AT`` is read when ptm_sync is imported: only a new process sees it."""
    assert "PTM_CRASH_AT" in PROCESS_ONLY_ENV
    done = ptm_sync(None, "--version", env={"PTM_CRASH_AT": "after-send"}, cwd=tmp_path)
    assert isinstance(done.args, list) and done.args[0] == sys.executable
    assert ptm_sync(None, "--version", cwd=tmp_path).args[0] == "ptm-sync"
