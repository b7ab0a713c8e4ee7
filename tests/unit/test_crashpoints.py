"""Crash points: inert without PTM_CRASH_AT, fatal at the named point and pass (DESIGN §9)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ptm_sync.ops import crashpoints
from ptm_sync.ops.crashpoints import EXIT_CODE, POINTS, VARIABLE, parse_target

PACKAGE = Path(crashpoints.__file__).parents[1]  # the whole ptm_sync package

SCRIPT = """
from ptm_sync.ops.crashpoints import crash_point
for n in range(1, 4):
    crash_point("after-decide")
    crash_point("after-send")
    print("passed", n, flush=True)
"""


def run(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if value is not None:
        env[VARIABLE] = value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("after-send", ("after-send", 1)),
        ("after-send:3", ("after-send", 3)),
        (" mid-imap-flag ", ("mid-imap-flag", 1)),
        ("", None),
        ("after-sent", None),
        ("after-send:0", None),
        ("after-send:x", None),
        ("after-send:-1", None),
    ],
)
def test_the_variable_names_a_point_and_a_pass(value: str, expected: object) -> None:
    assert parse_target(value) == expected


@pytest.mark.parametrize("value", [None, "", "no-such-point", "after-send:9"])
def test_points_are_inert_unless_named_and_reached(value: str | None) -> None:
    done = run(value)
    assert done.returncode == 0 and done.stdout.split("\n")[:3] == [
        "passed 1",
        "passed 2",
        "passed 3",
    ]
    assert done.stderr == ""


def test_the_process_dies_at_the_named_pass_like_kill_9() -> None:
    done = run("after-send:2")
    assert done.returncode == EXIT_CODE
    # The first pass went through; the second never printed: nothing ran after the point.
    assert done.stdout == "passed 1\n"
    assert done.stderr.strip() == "ptm-sync: crash point after-send (pass 2): exiting"


def test_every_point_is_hooked_once_in_the_product() -> None:
    calls: dict[str, list[str]] = {name: [] for name in POINTS}
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r'crash_point\("([a-z-]+)"\)', path.read_text(encoding="utf-8")):
            assert name in calls, f"{path}: crash_point({name!r}) is not in POINTS"
            calls[name].append(path.name)
    assert all(len(where) == 1 for where in calls.values()), calls
