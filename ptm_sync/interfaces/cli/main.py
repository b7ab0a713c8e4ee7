"""The command line (DESIGN §7, a contract).

``ptm-sync [--config PATH] COMMAND``.  Exit code 0 on success, 1 on a failure the user can
fix (one line on stderr, no traceback), 2 on usage errors.  Each command lives in a module
of :mod:`ptm_sync.interfaces.cli.commands` that registers its own sub-parser.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ptm_sync import __version__
from ptm_sync.interfaces.cli.commands import COMMAND_MODULES
from ptm_sync.interfaces.cli.exits import handle_error
from ptm_sync.interfaces.cli.output import LOG_FORMATS, configure_logging


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: it takes the global options too, so that they may stand after
    the command as well as before it (DESIGN §7: ``ptm-sync sync --config X -v``).

    Their default is "not given", so a value given before the command is kept.  Nested
    parsers (``mail deliver``, ``quarantine show``) are of this class as well.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file"
        )
        self.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output"
        )
        self.add_argument(
            "--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS, help="log lines"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptm-sync",
        description="Parent-teacher conferences through the calendars and inboxes "
        "people already use.",
    )
    parser.add_argument("--config", metavar="PATH", help="configuration file (ptm-sync.toml)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines as text (default) or one JSON object per line, for log shippers",
    )
    parser.add_argument("--version", action="version", version=f"ptm-sync {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _verbosity(argv: Sequence[str]) -> int:
    """How many -v / --verbose the command line holds (``-vv`` counts two), up to ``--``."""
    count = 0
    for token in argv:
        if token == "--":
            break
        if token == "--verbose":
            count += 1
        elif token.startswith("-") and not token.startswith("--") and set(token[1:]) == {"v"}:
            count += len(token) - 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # argparse counts a sub-command's -v afresh (the command's namespace replaces the
    # count given before it): count every one, wherever it stands.
    args.verbose = max(args.verbose, _verbosity(sys.argv[1:] if argv is None else argv))
    level = logging.WARNING - 10 * min(args.verbose, 2)
    configure_logging(level, args.log_format)  # URL passwords masked in every line
    try:
        result = args.func(args)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        return handle_error(exc)
    return int(result or 0)
