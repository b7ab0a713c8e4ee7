"""-v counts wherever it stands: before the command, after it, or both (DESIGN §7)."""

from __future__ import annotations

import pytest

from ptm_sync.interfaces.cli.main import _verbosity, build_parser


@pytest.mark.parametrize(
    ("argv", "count"),
    [
        (["-v", "sync", "-v"], 2),
        (["sync", "-vv"], 2),
        (["--verbose", "sync"], 1),
        (["sync"], 0),
        (["mail", "deliver", "--", "-v"], 0),
    ],
)
def test_every_v_counts(argv: list[str], count: int) -> None:
    assert _verbosity(argv) == count


def test_argparse_alone_loses_the_count_before_the_command() -> None:
    # What _verbosity makes up for: the command's -v starts counting afresh.
    args = build_parser().parse_args(["-v", "sync", "-v"])
    assert args.verbose == 1
