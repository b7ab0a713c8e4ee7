"""`ptm-sync COMMAND --help` explains the commands of issue 16 (DESIGN §7): each has a
description line of its own (what it does, not only its usage) and every option and
argument says what it is."""

from __future__ import annotations

import argparse

import pytest

from ptm_sync.interfaces.cli.main import build_parser

#: The commands issue 16 added (a nested action after a space).
NEW_COMMANDS = [
    "late",
    "report",
    "nudge",
    "jobs",
    "jobs run",
    "purge",
    "meetings mark",
    "meetings note",
    "roster import",
]


def command(path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path.split():
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path", NEW_COMMANDS)
def test_each_new_command_describes_itself_and_every_option(path: str) -> None:
    parser = command(path)

    assert parser.description and len(parser.description) > 40, path
    unexplained = [
        action.option_strings or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert unexplained == [], path


def test_late_says_how_late_a_teacher_may_run() -> None:
    text = command("late").format_help()

    assert "have not started yet" in text and "No meeting moves to another day" in text
    assert "how many minutes late, 1 to 240" in text and "the teacher's address" in text
