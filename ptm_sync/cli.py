"""The command line (DESIGN §7, a contract).

``ptm-sync [--config PATH] COMMAND``.  Exit code 0 on success, 1 on a failure the user can
fix (one line on stderr, no traceback), 2 on usage errors.  Each command lives in a module
of :mod:`ptm_sync.commands` that registers its own sub-parser.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from ptm_sync import __version__
from ptm_sync.commands import COMMAND_MODULES
from ptm_sync.errors import PtmError, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptm-sync",
        description="Parent-teacher conferences through the calendars and inboxes "
        "people already use.",
    )
    parser.add_argument("--config", metavar="PATH", help="configuration file (ptm-sync.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--version", action="version", version=f"ptm-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def handle_error(exc: BaseException) -> int:
    """Map an exception to a message on stderr and an exit code."""
    if isinstance(exc, KeyboardInterrupt):
        print("ptm-sync: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, UserError):
        print(f"ptm-sync: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, PtmError):
        hint = " (temporary; try again later)" if exc.retryable else ""
        print(f"ptm-sync: {exc}{hint}", file=sys.stderr)
        return 1
    if isinstance(exc, BrokenPipeError):
        return 0
    traceback.print_exception(exc)
    print("ptm-sync: internal error (a bug: please report the traceback above)", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        return handle_error(exc)
    return int(result or 0)
